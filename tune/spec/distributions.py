"""The search space: one distribution per searched TrainConfig field.

Example:
    >>> IntRange(low=2, high=8, step=2).to_optuna()
    IntDistribution(high=8, log=False, low=2, step=2)
    >>> str(Choice(values=[0.0, 0.5]))
    'choice[0.0, 0.5]'
"""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Field, Strict, field_validator, model_validator

from tune.spec._base import Int, Num, _Frozen
from tune.spec._errors import _Problems, _show

__all__ = ["Choice", "Distribution", "IntRange", "LogUniform", "Uniform"]


class _Range(_Frozen):
    """A distribution on [low, high]: its endpoints are what validation tries."""

    def endpoints(self) -> list[tuple[tuple, Any]]:
        return [(("low",), self.low), (("high",), self.high)]  # type: ignore[attr-defined]


class _Interval(_Range):
    """Floats on [low, high] with low < high; ``_LOG`` samples on a log scale (low > 0)."""

    type: str
    low: Num
    high: Num
    _LOG: ClassVar[bool] = False

    @model_validator(mode="after")
    def _bounds(self) -> "_Interval":
        problems = []
        if self._LOG and self.low <= 0:
            problems.append((("low",), f"expected > 0 (log scale), got {self.low!r}"))
        if self.high <= self.low:
            problems.append((("high",), f"expected > low ({self.low!r}), got {self.high!r}"))
        if problems:
            raise _Problems(problems)
        return self

    def to_optuna(self) -> Any:
        from optuna.distributions import FloatDistribution
        return FloatDistribution(self.low, self.high, log=self._LOG)

    def __str__(self) -> str:
        return f"{self.type}({self.low!r}, {self.high!r})"


class LogUniform(_Interval):
    """Log-uniform on [low, high] with 0 < low < high (for scales such as ``lr``)."""

    type: Literal["loguniform"] = "loguniform"
    _LOG: ClassVar[bool] = True


class Uniform(_Interval):
    """Uniform on [low, high] with low < high."""

    type: Literal["uniform"] = "uniform"


class IntRange(_Range):
    """Integers low, low + step, ..., high (log-spaced sampling when ``log``, then step 1)."""

    type: Literal["int"] = "int"
    low: Int
    high: Int
    step: Int = 1
    log: Annotated[bool, Strict()] = False

    @model_validator(mode="after")
    def _bounds(self) -> "IntRange":
        problems = []
        if self.high <= self.low:
            problems.append((("high",), f"expected > low ({self.low}), got {self.high}"))
        if self.step < 1:
            problems.append((("step",), f"expected >= 1, got {self.step}"))
        elif self.high > self.low and (self.high - self.low) % self.step:
            problems.append((("high",), f"expected low + k * step ({self.low} + k * "
                                        f"{self.step}), got {self.high}"))
        if self.log and self.low < 1:
            problems.append((("low",), f"expected >= 1 with log: true, got {self.low}"))
        if self.log and self.step != 1:
            problems.append((("step",), f"expected 1 with log: true, got {self.step}"))
        if problems:
            raise _Problems(problems)
        return self

    def to_optuna(self) -> Any:
        from optuna.distributions import IntDistribution
        return IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def __str__(self) -> str:
        return f"int({self.low}, {self.high}, step={self.step}, log={self.log})"


class Choice(_Frozen):
    """One of a fixed list of distinct values (use it to include exact values such as 0)."""

    type: Literal["choice"] = "choice"
    values: Annotated[list[Any], Field(min_length=1)]

    @field_validator("values")
    @classmethod
    def _scalars(cls, values: list[Any]) -> list[Any]:
        problems = [((i,), f"expected a number, string, bool or null, got {_show(v)}")
                    for i, v in enumerate(values)
                    if v is not None and not isinstance(v, (bool, int, float, str))]
        if not problems and len(set(map(repr, values))) < len(values):
            problems.append(((), f"expected distinct values, got {_show(values)}"))
        if problems:
            raise _Problems(problems)
        return values

    def endpoints(self) -> list[tuple[tuple, Any]]:
        return [(("values", i), v) for i, v in enumerate(self.values)]

    def to_optuna(self) -> Any:
        from optuna.distributions import CategoricalDistribution
        return CategoricalDistribution(self.values)

    def __str__(self) -> str:
        return f"choice{json.dumps(self.values)}"


Distribution = Annotated[Union[LogUniform, Uniform, IntRange, Choice], Field(discriminator="type")]
_DIST_BY_TAG: dict[str, type[_Frozen]] = {"loguniform": LogUniform, "uniform": Uniform,
                                          "int": IntRange, "choice": Choice}
_FLOAT_DISTS = ("uniform", "loguniform")
