"""Requirements on a front member: ``name op number`` such as ``clean_acc >= 0.9``.

A name is a final metric or a numeric :class:`tgo.config.TrainConfig` field; op is one of
``>= <= > < ==`` (``==`` within float rounding).

Example:
    >>> Requirement.parse("clean_acc>=0.9").holds(0.93)
    True
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
import typing
from typing import Any, Callable

from tgo.config import TrainConfig
from tune.objectives import Metric

__all__ = ["METRICS", "NUMERIC_FIELDS", "Requirement", "is_number"]

METRICS = tuple(m.value for m in Metric)
_HINTS = typing.get_type_hints(TrainConfig)
#: TrainConfig fields a requirement may bound (plain numbers).
NUMERIC_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig)
                       if _HINTS[f.name] in (int, float))


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number a requirement can compare (not a bool, not NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and not math.isnan(value)


def _equal(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": _equal}
_FORM = ("'<name> <op> <number>' such as 'clean_acc >= 0.9' or 'timesteps <= 4', op one of "
         ">=, <=, >, <, ==")
_PATTERN = re.compile(r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>>=|<=|==|>|<)\s*"
                      r"(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One requirement ``name op value`` on a front member's metric or config field.

    Example:
        >>> r = Requirement.parse("timesteps<=4")
        >>> str(r), r.holds(2), r.holds(8)
        ('timesteps <= 4', True, False)
    """

    name: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> "Requirement":
        """Parse ``"clean_acc >= 0.9"``; raise ValueError showing the expected form."""
        match = _PATTERN.match(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"require: expected {_FORM}, got {text!r}")
        name = match["name"]
        if name not in METRICS and name not in NUMERIC_FIELDS:
            raise ValueError(f"require: expected a metric ({', '.join(METRICS)}) or a numeric "
                             f"TrainConfig field ({', '.join(NUMERIC_FIELDS)}), got {name!r} "
                             f"in {text!r}")
        value = float(match["value"])
        if not math.isfinite(value):
            raise ValueError(f"require: expected a finite bound, got {match['value']!r} in "
                             f"{text!r}")
        return cls(name, match["op"], value)

    def holds(self, got: Any) -> bool:
        """Whether ``got`` satisfies the requirement (a missing or non-number never does)."""
        return is_number(got) and _OPS[self.op](float(got), self.value)

    def __str__(self) -> str:
        return f"{self.name} {self.op} {self.value:g}"
