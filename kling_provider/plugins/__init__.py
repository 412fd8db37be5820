"""Airflow plugins this provider ships (registered through the ``airflow.plugins`` entry point)."""
