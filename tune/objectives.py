"""What a sweep optimises: the objective metrics, their directions, outcome constraints.

The one home of these names: :class:`Metric` (the five final-evaluation metrics, listed in
:data:`OBJECTIVE_NAMES`), :class:`Direction`, and constraints written as plain strings such
as ``"clean_acc >= 0.9"``. Each string becomes a frozen :class:`Constraint` whose
:meth:`Constraint.violation` follows Optuna's convention: a value ``<= 0`` is feasible, a
value ``> 0`` is infeasible by that amount (in the metric's own units, e.g. accuracy as a
fraction in [0, 1]); a strict ``>`` or ``<`` is violated at equality. :class:`Constraints`
is the one evaluator of a spec's constraints, used by the searcher and by samplers.

Example:
    >>> c = Constraint.parse("clean_acc >= 0.9")
    >>> round(c.violation({"clean_acc": 0.85}), 6), c.feasible({"clean_acc": 0.93})
    (0.05, True)
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from typing import Any, Mapping, Sequence

from pydantic import BaseModel, ConfigDict

__all__ = [
    "CONSTRAINT_FORM",
    "Constraint",
    "Constraints",
    "Direction",
    "Metric",
    "OBJECTIVE_NAMES",
    "Op",
    "RESULT_ATTR",
]


class Direction(str, enum.Enum):
    """Whether an objective is maximised or minimised (compares equal to ``"max"``/``"min"``)."""

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
    SOPS = "sops"   # synaptic operations per inference (tgo.energy): the energy objective

    @property
    def natural_direction(self) -> Direction:
        """Accuracies are maximised; spike rate, near-threshold share and SOPs minimised."""
        if self in (Metric.CLEAN_ACC, Metric.ROBUST_ACC):
            return Direction.MAX
        return Direction.MIN

    @property
    def val_key(self) -> str:
        """The per-epoch validation metric that stands for this objective (``val_<name>``)."""
        return f"val_{self.value}"


#: The metric names, in the order of docs/CONTRACTS.md.
OBJECTIVE_NAMES: tuple[str, ...] = tuple(m.value for m in Metric)


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
            reports all five metrics).
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


#: Optuna user attribute holding the numeric entries of a trial's last Tune result (set by
#: :class:`tune.search.PruneAwareOptunaSearch` before it tells the trial).
RESULT_ATTR = "tune_result"


@dataclasses.dataclass(frozen=True)
class Constraints:
    """The one evaluator of a sweep's constraints, on a trial's final (or last) result.

    :meth:`evaluate` names each constraint by its text; a metric missing from the result
    is read from its per-epoch stand-in ``val_<metric>`` (a pruned trial), and missing
    there too it is infinitely infeasible. Called on an Optuna trial, it is a picklable
    ``constraints_func`` (Optuna's older, deprecated form) that reads the result the
    searcher stored as the :data:`RESULT_ATTR` user attribute, overlaid by the trial's
    top-level user attributes.

    Example:
        >>> c = Constraints.parse(["clean_acc >= 0.5", "spike_rate < 0.2"])
        >>> c.evaluate({"clean_acc": 0.9, "val_spike_rate": 0.2})
        {'clean_acc >= 0.5': -0.4, 'spike_rate < 0.2': 5e-324}
    """

    items: tuple[Constraint, ...]

    def __post_init__(self) -> None:
        if not self.items or not all(isinstance(c, Constraint) for c in self.items):
            raise ValueError(f"Constraints: expected one Constraint or more, got {self.items!r}")

    @classmethod
    def parse(cls, texts: Sequence[str | Constraint]) -> "Constraints":
        return cls(tuple(t if isinstance(t, Constraint) else Constraint.parse(t)
                         for t in texts))

    def evaluate(self, result: Mapping[str, Any]) -> dict[str, float]:
        """Constraint text -> violation (``<= 0`` feasible) for one result."""
        out = {}
        for c in self.items:
            name = c.metric.value
            metrics = result if name in result else {name: result.get(c.metric.val_key)}
            out[str(c)] = c.violation(metrics)
        return out

    def __call__(self, trial: Any) -> list[float]:
        metrics = dict(trial.user_attrs.get(RESULT_ATTR) or {})
        metrics.update({k: v for k, v in trial.user_attrs.items() if k != RESULT_ATTR})
        return list(self.evaluate(metrics).values())
