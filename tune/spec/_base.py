"""What every spec model shares: frozen, no unknown fields, no NaN or infinity, and strict
number types (a bool, or a number in a string, is not a number)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Strict

Int = Annotated[int, Strict()]  # an integer, not a bool, float or string
Num = Annotated[float, Strict()]  # an int or float, not a bool or string


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
