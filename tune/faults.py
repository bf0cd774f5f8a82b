"""Fault injection for reliability tests and drills (off unless the variable is set).

``TGO_FAULT_INJECTION`` holds a JSON list of faults; a trial whose sampled params match a
fault's ``when`` meets it at the end of epoch ``epoch``:

* ``"nan"``: its weights become NaN before that epoch's checkpoint is saved, as after a real
  blow-up; the next training step raises :class:`tgo.train.TrainingDiverged`, and so does
  every retry from that checkpoint;
* ``"raise"``: :class:`InjectedFault` is raised instead of reporting the epoch.

The driver forwards the variable to the trials (``ray.init(runtime_env=...)``).

Example:
    >>> import os
    >>> os.environ[VARIABLE] = '[{"when": {"lr": 0.0021}, "epoch": 2, "fault": "raise"}]'
    >>> fault_for({"lr": 0.0021, "margin": 0.5}, epoch=2)
    'raise'
    >>> fault_for({"lr": 0.002}, epoch=2) is None
    True
    >>> del os.environ[VARIABLE]
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

import torch

from tgo.errors import TgoError

__all__ = ["InjectedFault", "VARIABLE", "fault_for", "inject"]

VARIABLE = "TGO_FAULT_INJECTION"
_KINDS = ("nan", "raise")


class InjectedFault(TgoError, RuntimeError):
    """The fault ``TGO_FAULT_INJECTION`` asked for."""


def _faults() -> list[dict[str, Any]]:
    text = os.environ.get(VARIABLE, "").strip()
    if not text:
        return []
    faults = json.loads(text)
    if not isinstance(faults, list) or not all(
            isinstance(f, dict) and f.get("fault") in _KINDS and isinstance(f.get("when"), dict)
            for f in faults):
        raise ValueError(f"{VARIABLE}: expected a JSON list of {{when: {{param: value}}, "
                         f"epoch: N, fault: nan|raise}}, got {text!r}")
    return faults


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return a == b


def fault_for(params: Mapping[str, Any], epoch: int) -> str | None:
    """The fault a trial with ``params`` meets at the end of ``epoch``, or None."""
    for fault in _faults():
        if int(fault.get("epoch", 1)) == epoch and all(
                k in params and _same(params[k], v) for k, v in fault["when"].items()):
            return fault["fault"]
    return None


def inject(params: Mapping[str, Any], epoch: int, model: torch.nn.Module) -> None:
    """Apply the fault of ``params`` at ``epoch``, if any (see the module docstring)."""
    fault = fault_for(params, epoch)
    if fault == "nan":
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float("nan"))
    elif fault == "raise":
        raise InjectedFault(f"injected by {VARIABLE} at epoch {epoch} for {dict(params)}")
