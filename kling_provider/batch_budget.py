"""A budget for a whole batch: the estimated total of a list of generations, before any is sent.

``max_credits`` on an operator caps one task; a mapped task's indexes cannot see each other, so
nothing there stops 500 rows of 27 credits. This module totals the rows a DAG expands over
(``.expand_kwargs(rows)``) with the same price table and the operators' own defaults, and
refuses the batch when the total is above a limit. The guard operator
(:class:`~kling_provider.operators.budget.KlingBatchBudgetOperator`) runs it upstream of the
mapped task; call :func:`check_batch_budget` in your own ``@task`` to do the same by hand.

Only what sets the price is read from a row: ``model``, ``duration``, ``quality``, ``sound``
(rows may carry any other operator argument; they are ignored here). A row leaves out what the
``defaults`` (the ``partial()`` arguments) give, and those leave out what the operators default
to (``kling-v3-text-to-video``, 5 s, 720p, silent).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kling_provider.exceptions import KlingValidationError
from kling_provider.models.untrusted import show
from kling_provider.pricing import CostEstimate, _usd, estimate_video

#: The operator arguments a price depends on, and the operators' defaults for them.
PRICE_FIELDS: Mapping[str, Any] = {"model": "kling-v3-text-to-video", "duration": 5, "quality": "720p", "sound": False}
#: How many of the most expensive items a message names.
SHOWN_ITEMS = 3


class KlingBatchBudgetError(KlingValidationError):
    """A batch whose estimated total is above its limit, or cannot be known; nothing was sent."""


@dataclass(frozen=True)
class BatchItem:
    """One row of a batch and its estimate; ``index`` counts from 0, like Airflow's map index."""

    index: int
    estimate: CostEstimate
    label: str | None = None

    def describe(self) -> str:
        """``item 3 (sku=A12): 162.0 credits (~$2.25) for 15 s at 1080p, sound on``."""
        name = f"item {self.index}" + (f" ({self.label})" if self.label else "")
        return f"{name}: {self.estimate.describe()}"


@dataclass(frozen=True)
class BatchEstimate:
    """The estimated total of a batch. ``credits``/``usd`` are None when any item's price is unknown."""

    items: tuple[BatchItem, ...]

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def unknown(self) -> tuple[BatchItem, ...]:
        """Items with no published price (4k, turbo, o3, element creation)."""
        return tuple(item for item in self.items if item.estimate.credits is None)

    @property
    def credits(self) -> float | None:
        if self.unknown:
            return None
        return round(math.fsum(item.estimate.credits or 0.0 for item in self.items), 4)

    @property
    def usd(self) -> float | None:
        if self.unknown:
            return None
        return round(math.fsum(item.estimate.usd or 0.0 for item in self.items), 4)

    def most_expensive(self, count: int = SHOWN_ITEMS) -> tuple[BatchItem, ...]:
        """The priciest items first (by index among equals)."""
        priced = [item for item in self.items if item.estimate.credits is not None]
        priced.sort(key=lambda item: (-(item.estimate.credits or 0.0), item.index))
        return tuple(priced[:count])

    def worst_case_credits(self, retries: int) -> float | None:
        """The most the batch can be billed when each item may be submitted once per try.

        A try submits at most once, and a later try submits again only when EvoLink failed the
        earlier task with a transient code or forgot it (docs/cost.md): ``retries + 1`` times the
        estimate at most, if EvoLink bills failed tasks at all (it does not say).
        """
        return None if self.credits is None else round(self.credits * (retries + 1), 4)

    def describe(self) -> str:
        """``3 items: 81.0 credits (~$1.125); most expensive: item 0: 27.0 credits ...``."""
        noun = "item" if self.count == 1 else "items"
        if self.credits is None or self.usd is None:
            first = "; ".join(item.describe() for item in self.unknown[:SHOWN_ITEMS])
            return f"{self.count} {noun}: total unknown, {len(self.unknown)} without a published price ({first})"
        line = f"{self.count} {noun}: {self.credits} credits (~${_usd(self.usd)})"
        shown = self.most_expensive()
        if shown:
            line += "; most expensive: " + "; ".join(item.describe() for item in shown)
        return line


def estimate_batch(
    rows: Sequence[Mapping[str, Any]], *, defaults: Mapping[str, Any] | None = None, label_field: str | None = None
) -> BatchEstimate:
    """Estimate every row (operator keyword arguments, as given to ``expand_kwargs``).

    A row that is not a mapping, or whose price arguments break a rule, is a
    ``KlingValidationError`` naming the item: ``item 2: duration: must be an integer ...``.
    """
    if isinstance(rows, str | bytes) or not isinstance(rows, Sequence):
        raise KlingValidationError(
            f"rows: must be a list of operator arguments, one mapping per item (got {type(rows).__name__})",
            param="rows",
        )
    base = dict(PRICE_FIELDS)
    base.update({k: v for k, v in (defaults or {}).items() if k in PRICE_FIELDS})
    if defaults:
        try:
            estimate_video(**base)
        except KlingValidationError as err:
            raise KlingValidationError(f"defaults: {err.message}", param="defaults") from None
    items = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise KlingValidationError(
                f"item {index}: must be a mapping of operator arguments (got {type(row).__name__})", param="rows"
            )
        arguments = {**base, **{k: v for k, v in row.items() if k in PRICE_FIELDS}}
        try:
            estimate = estimate_video(**arguments)
        except KlingValidationError as err:
            raise KlingValidationError(f"item {index}: {err.message}", param=err.param) from None
        label = None
        if label_field is not None and label_field in row:
            label = f"{label_field}={str(row[label_field])[:60]}"
        items.append(BatchItem(index, estimate, label))
    return BatchEstimate(tuple(items))


def check_limits(max_credits: Any, max_usd: Any) -> None:
    """At least one limit, each a positive finite number."""
    for name, limit in (("max_credits", max_credits), ("max_usd", max_usd)):
        if limit is not None and not (
            isinstance(limit, int | float) and not isinstance(limit, bool) and math.isfinite(limit) and limit > 0
        ):
            raise KlingValidationError(f"{name}: must be a positive number (got {show(limit)})", param=name)
    if max_credits is None and max_usd is None:
        raise KlingValidationError("max_credits: give max_credits or max_usd (or both)", param="max_credits")


def check_batch_budget(
    rows: Sequence[Mapping[str, Any]],
    *,
    max_credits: float | None = None,
    max_usd: float | None = None,
    defaults: Mapping[str, Any] | None = None,
    label_field: str | None = None,
) -> BatchEstimate:
    """Total ``rows`` and raise :class:`KlingBatchBudgetError` when the total is above a limit.

    An item without a published price fails the check too (a budget that cannot be checked is
    not a budget, as with ``max_credits``). Returns the estimate when the batch is within budget.
    """
    check_limits(max_credits, max_usd)
    batch = estimate_batch(rows, defaults=defaults, label_field=label_field)
    param = "max_credits" if max_credits is not None else "max_usd"
    if batch.credits is None or batch.usd is None:
        raise KlingBatchBudgetError(
            f"batch budget: cannot be checked: {batch.describe()}. Remove those items or the budget; "
            "nothing was submitted",
            param=param,
        )
    over = []
    if max_credits is not None and batch.credits > max_credits:
        over.append(f"max_credits={max_credits}")
    if max_usd is not None and batch.usd > max_usd:
        over.append(f"max_usd={max_usd}")
    if over:
        noun = "item" if batch.count == 1 else "items"
        top = "; ".join(item.describe() for item in batch.most_expensive())
        raise KlingBatchBudgetError(
            f"batch budget: the {batch.count} {noun} would cost an estimated {batch.credits} credits "
            f"(~${_usd(batch.usd)}), more than {' and '.join(over)}; nothing was submitted. "
            f"Most expensive: {top}",
            param=param,
        )
    return batch


__all__ = [
    "PRICE_FIELDS",
    "BatchEstimate",
    "BatchItem",
    "KlingBatchBudgetError",
    "check_batch_budget",
    "check_limits",
    "estimate_batch",
]
