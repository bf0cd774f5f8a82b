"""Objective metrics, their directions, and outcome constraints such as ``"clean_acc >= 0.9"``.

A sweep spec names its objectives with :class:`Metric` and :class:`Direction`, and may
restrict the Pareto front with constraints written as plain strings. Each string becomes a
frozen :class:`Constraint` whose :meth:`Constraint.violation` follows Optuna's convention:
a value ``<= 0`` is feasible, a value ``> 0`` is infeasible by that amount (in the metric's
own units, e.g. accuracy as a fraction in [0, 1]).

Example:
    >>> c = Constraint.parse("clean_acc >= 0.9")
    >>> round(c.violation({"clean_acc": 0.85}), 6), c.feasible({"clean_acc": 0.93})
    (0.05, True)
"""

from __future__ import annotations

import enum
import math
import re
from typing import Any, Callable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict

__all__ = [
    "CONSTRAINT_FORM",
    "Constraint",
    "Direction",
    "Metric",
    "Op",
    "constraints_func",
]


class Direction(str, enum.Enum):
    """Whether an objective is maximised or minimised."""

    MAX = "max"
    MIN = "min"

    @property
    def optuna(self) -> str:
        """Optuna's spelling: ``"maximize"`` or ``"minimize"``."""
        return "maximize" if self is Direction.MAX else "minimize"


class Metric(str, enum.Enum):
    """A final-evaluation metric a sweep may optimise or constrain (see docs/CONTRACTS.md)."""

    CLEAN_ACC = "clean_acc"
    ROBUST_ACC = "robust_acc"
    SPIKE_RATE = "spike_rate"
    NEAR_THRESHOLD = "near_threshold"

    @property
    def natural_direction(self) -> Direction:
        """Accuracies are maximised, spike rate and near-threshold share minimised."""
        if self in (Metric.CLEAN_ACC, Metric.ROBUST_ACC):
            return Direction.MAX
        return Direction.MIN

    @property
    def val_key(self) -> str:
        """The per-epoch validation metric that stands for this objective (``val_<name>``)."""
        return f"val_{self.value}"


class Op(str, enum.Enum):
    """Comparison operator of a constraint."""

    GE = ">="
    LE = "<="
    GT = ">"
    LT = "<"


CONSTRAINT_FORM = (
    "'<metric> <op> <number>' such as 'clean_acc >= 0.9', with op one of "
    + ", ".join(op.value for op in Op)
    + " and metric one of "
    + ", ".join(repr(m.value) for m in Metric)
)

_PATTERN = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>>=|<=|>|<)\s*"
    r"(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


class Constraint(BaseModel):
    """One outcome constraint ``metric op value`` on a trial's final metrics.

    Attributes:
        metric: the constrained metric (need not be an objective; every finished trial
            reports all four metrics).
        op: ``>=``, ``<=``, ``>`` or ``<``.
        value: the bound, in the metric's units (accuracies and rates are fractions).

    Example:
        >>> Constraint.parse("spike_rate < 0.2").violation({"spike_rate": 0.25})
        0.04999999999999999
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    metric: Metric
    op: Op
    value: float

    @classmethod
    def parse(cls, text: str) -> "Constraint":
        """Parse ``"clean_acc >= 0.9"``; raise ValueError showing the expected form."""
        if not isinstance(text, str):
            raise ValueError(f"expected a string {CONSTRAINT_FORM}, got {text!r}")
        match = _PATTERN.match(text)
        if match is None:
            raise ValueError(f"expected {CONSTRAINT_FORM}, got {text!r}")
        name = match["metric"]
        if name not in {m.value for m in Metric}:
            choices = ", ".join(repr(m.value) for m in Metric)
            raise ValueError(f"expected a metric in {choices}, got {name!r} in {text!r}")
        value = float(match["value"])
        if not math.isfinite(value):
            raise ValueError(f"expected a finite bound, got {match['value']!r} in {text!r}")
        return cls(metric=Metric(name), op=Op(match["op"]), value=value)

    def __str__(self) -> str:
        return f"{self.metric.value} {self.op.value} {self.value!r}"

    def violation(self, metrics: Mapping[str, Any]) -> float:
        """How far ``metrics`` are from satisfying the constraint (Optuna's convention).

        Returns ``bound - metric`` for ``>=``/``>`` and ``metric - bound`` for ``<=``/``<``,
        so ``<= 0`` means feasible. A strict operator at equality is violated by the
        smallest positive float step. A missing, non-numeric or NaN metric (a failed or
        pruned trial) is infinitely infeasible.
        """
        got = metrics.get(self.metric.value)
        if isinstance(got, bool) or not isinstance(got, (int, float)) or math.isnan(got):
            return math.inf
        diff = self.value - got if self.op in (Op.GE, Op.GT) else got - self.value
        if diff == 0 and self.op in (Op.GT, Op.LT):
            return math.ulp(0.0)
        return float(diff)

    def feasible(self, metrics: Mapping[str, Any]) -> bool:
        """True when ``violation(metrics) <= 0``."""
        return self.violation(metrics) <= 0


def constraints_func(
    constraints: Sequence[Constraint], objective_names: Sequence[str]
) -> Callable[[Any], list[float]]:
    """Build an Optuna ``constraints_func(FrozenTrial) -> list[float]``.

    The metrics of a trial are its ``user_attrs`` overlaid with its objective values
    (``trial.values`` in the order of ``objective_names``) when those are stored. Optuna
    calls this function inside ``study.tell`` *before* it stores the values, so whoever
    tells a trial must first ``trial.set_user_attr(metric, value)`` for every constrained
    metric; a metric found nowhere counts as infinitely infeasible.

    Example:
        >>> import optuna
        >>> t = optuna.trial.create_trial(values=[0.8, 0.3], user_attrs={"spike_rate": 0.1})
        >>> c = Constraint.parse("clean_acc >= 0.9")
        >>> f = constraints_func([c], ["clean_acc", "robust_acc"])
        >>> [round(v, 6) for v in f(t)]
        [0.1]
    """
    fixed = tuple(constraints)
    names = tuple(objective_names)

    def _violations(trial: Any) -> list[float]:
        metrics = dict(trial.user_attrs)
        if trial.values is not None:
            metrics.update(zip(names, trial.values))
        return [c.violation(metrics) for c in fixed]

    return _violations
