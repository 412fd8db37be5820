"""Mapped Kling operators are checked when the DAG file is parsed, like plain ones.

Without this, ``KlingTextToVideoOperator.partial(duration=20).expand(prompt=...)`` would parse and
fail in every mapped index. The operators' ``partial()`` returns :class:`KlingOperatorPartial`,
whose ``expand()`` / ``expand_kwargs()`` first build the operator once the way Airflow itself
unmaps it at run time (``_airflow_from_mapped=True``: nothing is added to the DAG), with the
mapped arguments standing in the way templates do:

* ``partial()`` arguments with every mapped argument unknown: the plain operator's messages.
* each item of a literal ``expand()`` list or ``expand_kwargs()`` list, named in the message
  (``expand_kwargs item 2: duration: must be an integer from 3 to 15 (got 20)``).

A DAG fails to parse only if no value of the unknown arguments could pass. An ``expand()``
argument is present: a template field stands in as templates do
(:meth:`BaseKlingOperator._stand_in`); an ``expand_kwargs()`` row may set any argument or leave
it out, so those are left out. Other unknown arguments take their defaults. Then a problem that
names an unknown argument is not counted, an unknown ``duration`` leaves the shot rules to
``execute()``, an unknown ``model`` passes if any model of the operator's family accepts the
rest, and the budget (``max_credits``) is checked against the least the unknown price inputs
could make it (3 s, 720p, silent, the default model). The cost is one operator construction per
check: for ``partial()``, and for each literal item.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.bases.operator import partial as airflow_partial
from airflow.sdk.definitions.mappedoperator import OperatorPartial

from kling_provider.exceptions import KlingValidationError

if TYPE_CHECKING:
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    from kling_provider.operators.base import BaseKlingOperator

#: While a mapped operator is checked: its arguments whose values are not known yet. The
#: operator built for the check skips ``BaseOperator.__init__`` (Airflow builds the real one when
#: it unmaps the task), which is most of what building an operator costs.
UNKNOWN: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar("kling_unknown_arguments", default=None)


class MappedValue:
    """Stands for a template field's mapped value: seen as a template (it has ``resolve``)."""

    def resolve(self, context: Any) -> Any:  # pragma: no cover - never rendered
        raise NotImplementedError("a parse-time stand-in is never rendered")

    def __repr__(self) -> str:
        return "<mapped>"


_MAPPED = MappedValue()
#: partial() arguments kept when the operator is built for a check: where it sits in the DAG
#: (for the DAG's default_args, as when Airflow unmaps it).
_CONTEXT = frozenset({"task_id", "dag", "task_group"})


class KlingOperatorPartial(OperatorPartial):
    """``Operator.partial(...)``: ``expand()`` and ``expand_kwargs()`` check before mapping."""

    __slots__ = ()

    def expand(self, **mapped_kwargs: Any) -> MappedOperator:
        if mapped_kwargs:  # else Airflow's own TypeError
            try:
                check_expand(self, mapped_kwargs)
            except KlingValidationError:
                self._refused()
                raise
        return super().expand(**mapped_kwargs)

    def expand_kwargs(self, kwargs: Any, *, strict: bool = True) -> MappedOperator:
        try:
            check_expand_kwargs(self, kwargs, strict=strict)
        except KlingValidationError:
            self._refused()
            raise
        return super().expand_kwargs(kwargs, strict=strict)

    def _refused(self) -> None:
        """A refused expansion is reported once, by its error, not also as "never mapped"."""
        self._expand_called = True


class CheckedPartial:
    """``Operator.partial``: Airflow's (class-only, like its own descriptor), returning a
    :class:`KlingOperatorPartial`. Airflow's metaclass leaves a subclass's own ``partial`` alone."""

    def __get__(self, obj: object, cls: type | None = None) -> Callable[..., KlingOperatorPartial]:
        if obj is not None:

            def partial(**kwargs: Any) -> KlingOperatorPartial:
                raise TypeError("partial can only be called on Operator classes, not Tasks themselves")

            return partial
        assert cls is not None
        return functools.partial(_partial, cls)


def _partial(cls: type, **kwargs: Any) -> KlingOperatorPartial:
    made = airflow_partial(cls, **kwargs)
    made.__class__ = KlingOperatorPartial  # the same object, with the checking expand methods
    return made  # type: ignore[return-value]


def check_expand(partial: OperatorPartial, mapped: Mapping[str, Any]) -> None:
    """``expand(name=list | XComArg, ...)``: partial() with every mapped name unknown, then each
    item of each literal list (the other mapped names unknown: Airflow takes the product)."""
    cls, names = _operator(partial), set(mapped)
    _check(cls, partial, {}, unknown=names, present=names)
    for name, values in mapped.items():
        if not isinstance(values, list | tuple):
            continue
        others = names - {name}
        for index, value in enumerate(values):
            _check(cls, partial, {name: value}, unknown=others, present=others, where=f"expand {name} item {index}")


def check_expand_kwargs(partial: OperatorPartial, rows: Any, *, strict: bool = True) -> None:
    """``expand_kwargs(list | XComArg)``: any argument partial() leaves out may come from a row.

    With ``strict`` (Airflow's default) a row may not repeat a ``partial()`` argument: Airflow
    refuses that only when the task runs, so it is said here."""
    cls = _operator(partial)
    open_names = set(_argument_names(cls)) - set(partial.kwargs)
    _check(cls, partial, {}, unknown=open_names)  # a row may set any of them, or leave it out
    if not isinstance(rows, list | tuple):
        return
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            continue
        where = f"expand_kwargs item {index}"
        twice = sorted(set(row) & set(partial.kwargs)) if strict else []
        if twice:
            raise KlingValidationError(
                f"{where}: {', '.join(twice)}: given in partial() too; Airflow refuses that when the task runs "
                "(leave it out of one, or expand_kwargs(..., strict=False) to let the row win)",
                param=twice[0],
            )
        _check(cls, partial, dict(row), unknown=set(), where=where)


def _operator(partial: OperatorPartial) -> type[BaseKlingOperator]:
    cls: type[BaseKlingOperator] = partial.operator_class  # type: ignore[assignment]
    return cls


@functools.cache
def _argument_names(cls: type) -> frozenset[str]:
    """The keyword arguments of the Kling operator class itself (not BaseOperator's)."""
    names: set[str] = set()
    for klass in cls.mro():
        if klass is BaseOperator:
            break
        init = klass.__dict__.get("__init__")
        names |= set(getattr(init, "_BaseOperatorMeta__param_names", ()))
    return frozenset(names)


@functools.cache
def _required_names(cls: type) -> frozenset[str]:
    """Arguments without a default (a row must give them: they stand in as present)."""
    names: set[str] = set()
    for klass in cls.mro():
        init = klass.__dict__.get("__init__")
        if init is not None:
            parameters = inspect.signature(init).parameters.values()
            names |= {p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.default is p.empty}
    return frozenset(names)


def _check(
    cls: type[BaseKlingOperator],
    partial: OperatorPartial,
    known: dict[str, Any],
    *,
    unknown: set[str],
    present: set[str] | frozenset[str] = frozenset(),
    where: str | None = None,
) -> None:
    # Only what the Kling operator checks: BaseOperator's own arguments (retries, pool...) are
    # Airflow's to check, and leaving them out halves the cost of building the operator.
    own = _argument_names(cls)
    kwargs: dict[str, Any] = {k: v for k, v in partial.kwargs.items() if k in own or k in _CONTEXT}
    kwargs.update(known)
    unknown = set(unknown)
    for name, value in known.items():
        if name not in cls.template_fields and _resolvable(value):
            unknown.add(name)  # an XComArg in a row, for an argument that is not templated
    required = _required_names(cls)
    for name in unknown:
        if name in cls.template_fields and (name in present or name in required):
            kwargs[name] = _MAPPED
        else:
            kwargs.pop(name, None)  # its default stands in (see the module docstring)
    # No contextlib.contextmanager here: this runs for every mapped task of a DAG file (bench #4).
    token = UNKNOWN.set(frozenset(unknown))
    try:
        cls(**kwargs, _airflow_from_mapped=True)
    except KlingValidationError as err:
        if where is None:
            raise
        raise _named(err, where) from None
    finally:
        UNKNOWN.reset(token)


def _resolvable(value: Any) -> bool:
    return value is not None and not isinstance(value, str | int | float | bool) and hasattr(value, "resolve")


def _named(err: KlingValidationError, where: str) -> KlingValidationError:
    """The same error, its message naming the mapped item it comes from."""
    problems = getattr(err, "problems", ())
    if not problems:
        message = f"{where}: {err.message}"
    elif len(problems) == 1:
        message = f"{where}: {problems[0]}"
    else:
        message = f"{where}: {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)
    named = KlingValidationError(message, param=err.param)
    named.problems = problems  # type: ignore[attr-defined]
    return named
