"""A guard task that stops a batch before its first generation when its total is over budget.

::

    rows = read_catalogue()  # a @task returning [{"prompt": ..., "duration": 5}, ...]
    budget = KlingBatchBudgetOperator(task_id="budget", rows=rows, max_credits=500, defaults={"quality": "1080p"})
    KlingTextToVideoOperator.partial(task_id="teaser", quality="1080p").expand_kwargs(budget.output)

The mapped task expands over the guard's output (the same rows, returned unchanged), so no
index of it can start before the guard passed: over budget, the guard fails with
``AirflowFailException`` (no retries) and the mapped task is ``upstream_failed``, having sent
nothing. A literal list is checked when the DAG file is parsed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from kling_provider._compat import AirflowFailException
from kling_provider.batch_budget import PRICE_FIELDS, BatchEstimate, check_batch_budget, check_limits, estimate_batch
from kling_provider.exceptions import KlingValidationError
from kling_provider.operators.base import _is_template

if TYPE_CHECKING:
    from airflow.sdk import Context


class KlingBatchBudgetOperator(BaseOperator):
    """Total a batch's estimated cost; fail before any generation when it is above the limit.

    :param rows: the list the Kling operator expands over: one mapping of operator arguments per
        item (``expand_kwargs`` rows), or an XComArg giving it (templated).
    :param max_credits: the limit on the estimated total in credits (give this, ``max_usd``, or
        both; templated, e.g. ``"{{ var.value.kling_daily_credits }}"``).
    :param max_usd: the limit on the estimated total in US dollars (templated).
    :param defaults: the ``partial()`` arguments of the mapped operator that set the price
        (``model``, ``duration``, ``quality``, ``sound``); rows override them.
    :param label_field: a row key that names items in messages (e.g. ``"sku"``).

    :returns: the rows unchanged (the XCom): expand over ``.output``.

    Items with no published price (4k, turbo, o3) fail the check, as with ``max_credits``.
    """

    template_fields: Sequence[str] = ("rows", "max_credits", "max_usd")
    ui_color = "#fde68a"

    def __init__(
        self,
        *,
        rows: Any,
        max_credits: float | None = None,
        max_usd: float | None = None,
        defaults: Mapping[str, Any] | None = None,
        label_field: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.rows = rows
        self.max_credits = max_credits
        self.max_usd = max_usd
        self.defaults = dict(defaults or {})
        self.label_field = label_field

        # A templated limit is known at run time only: stand in a valid one to check the rest now.
        templated = _is_template(max_credits) or _is_template(max_usd)
        check_limits(*(1.0 if _is_template(limit) else limit for limit in (max_credits, max_usd)))
        estimate_batch([], defaults=self.defaults)  # the defaults are valid prices
        if _is_literal(rows) and not templated:
            self._check(rows)  # parse time: the DAG file fails to import, naming the rule

    def _check(self, rows: Any) -> BatchEstimate | None:
        if isinstance(rows, list | tuple) and not rows:
            return None
        return check_batch_budget(
            rows,
            max_credits=self.max_credits,
            max_usd=self.max_usd,
            defaults=self.defaults,
            label_field=self.label_field,
        )

    def execute(self, context: Context) -> list[Any]:
        rows = self.rows
        if isinstance(rows, Sequence) and not isinstance(rows, list | tuple | str | bytes):
            # A mapped task's XComArg renders to a lazy sequence: read it by index (iterating
            # asks for one item past its end, which logs an error).
            rows = [rows[index] for index in range(len(rows))]
        try:
            self.max_credits, self.max_usd = (
                _rendered_limit("max_credits", self.max_credits),
                _rendered_limit("max_usd", self.max_usd),
            )
            batch = self._check(rows)
        except KlingValidationError as err:
            raise AirflowFailException(err.message) from None
        if batch is not None:
            limits = " and ".join(
                f"{name}={value}"
                for name, value in (("max_credits", self.max_credits), ("max_usd", self.max_usd))
                if value is not None
            )
            self.log.info("Kling batch within budget (%s): %s", limits, batch.describe())
        else:
            self.log.info("Kling batch is empty: nothing to generate")
        return list(rows)


def _rendered_limit(name: str, value: Any) -> Any:
    """A templated limit renders to text: read it as a number (check_limits says what is wrong)."""
    if not isinstance(value, str):
        return value
    try:
        return float(value.strip())
    except ValueError:
        raise KlingValidationError(
            f"{name}: must be a positive number (got {value[:80]!r}, as rendered)", param=name
        ) from None


def _is_literal(rows: Any) -> bool:
    """A list whose price arguments are all known now (no XComArg, no Jinja in them)."""
    if not isinstance(rows, list | tuple):
        return False
    for row in rows:
        if isinstance(row, Mapping) and any(_is_template(row.get(name)) for name in PRICE_FIELDS):
            return False
    return True
