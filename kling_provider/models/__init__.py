"""Typed request and response models for EvoLink's video API."""
