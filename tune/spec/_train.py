"""How a spec meets :class:`tgo.config.TrainConfig`: which fields it may search, which sit
at its top level, what ``train`` may hold, and how TrainConfig's errors are read back."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from tgo.config import TrainConfig
from tune.spec._errors import _CONTROL, _show

#: TrainConfig fields a spec may search over (every other field is fixed).
SEARCHABLE = ("margin_weight", "margin", "noise_scale", "timesteps", "lr", "eps_train")
_INT_FIELDS = frozenset({"timesteps"})
_TOP_LEVEL = ("dataset", "model", "epochs", "regime")  # TrainConfig fields set at the top level
_TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
# TrainConfig checks its numbers and enums; plain str/bool fields are checked here.
_PLAIN_TYPES = {f.name: {"str": str, "bool": bool}[str(f.type)]
                for f in dataclasses.fields(TrainConfig) if str(f.type) in ("str", "bool")}


def _train_problems(train: Mapping[str, Any]) -> list[tuple[tuple, str]]:
    """(path under ``train``, text) for every entry of ``train`` that cannot be fixed
    there (TrainConfig checks the values themselves once the whole spec is read)."""
    problems = []
    for key, value in train.items():
        if key in _TOP_LEVEL:
            problems.append(((key,), f"expected at the top level of the spec "
                                     f"('{key}: ...'), got it under train"))
        elif key not in _TRAIN_FIELDS:
            problems.append(((key,), "expected a TrainConfig field "
                                     f"({', '.join(_TRAIN_FIELDS)}), got {_show(key)}"))
        elif value is not None and not isinstance(value, (bool, int, float, str)):
            problems.append(((key,), f"expected a number, string, bool or null, "
                                     f"got {_show(value)}"))
        elif key in _PLAIN_TYPES and not isinstance(value, _PLAIN_TYPES[key]):
            kind = "true or false" if _PLAIN_TYPES[key] is bool else "a string"
            problems.append(((key,), f"expected {kind}, got {_show(value)}"))
        elif isinstance(value, str) and _CONTROL.search(value):
            problems.append(((key,), f"expected no control characters, got {_show(value)}"))
    return problems


def _split_config_error(exc: Exception) -> tuple[str | None, str]:
    """``"batch_size: expected >= 1, got 0"`` -> ``("batch_size", "expected >= 1, got 0")``;
    a message that names no single TrainConfig field gives ``(None, message)``."""
    field, sep, text = str(exc).partition(": ")
    if sep and field in _TRAIN_FIELDS:
        return field, text
    return None, str(exc)
