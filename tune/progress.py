"""One line per trial event on the console, beside Ray Tune's periodic status table."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

from ray import tune as raytune

from tune.spec import SweepSpec

__all__ = ["ProgressCallback", "short_config"]

_SYMBOLS = {"margin_weight": "lambda", "margin": "delta", "noise_scale": "sigma",
            "timesteps": "T", "lr": "lr", "eps_train": "eps_train"}


def short_config(config: dict[str, Any]) -> str:
    """``lambda=0.42 delta=0.51 sigma=0.12 T=4`` for the searched params of a trial."""
    parts = []
    for key, value in config.items():
        name = _SYMBOLS.get(key, key)
        parts.append(f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}")
    return " ".join(parts)


class ProgressCallback(raytune.Callback):
    """Print when a trial finishes, is pruned or fails, with a running count."""

    def __init__(self, spec: SweepSpec, pruned_lookup: Callable[[str], Any] | None = None,
                 stream=None) -> None:
        self._spec = spec
        self._pruned = pruned_lookup or (lambda trial_id: None)
        self._stream = stream
        self._start: dict[str, float] = {}
        self._ended = 0

    def _print(self, text: str) -> None:
        print(f"[tgo {self._ended}/{self._spec.num_samples}] {text}",
              file=self._stream or sys.stdout, flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._start.setdefault(trial.trial_id, time.monotonic())

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended += 1
        took = time.monotonic() - self._start.get(trial.trial_id, time.monotonic())
        last = trial.last_result or {}
        head = f"trial {trial.trial_id} ({short_config(trial.config)})"
        info_pruned = self._pruned(trial.trial_id)
        if info_pruned is not None:
            self._print(f"{head} pruned at epoch {info_pruned.epoch} "
                        f"(rung {info_pruned.rung}) after {took:.0f}s")
        elif last.get("done_training"):
            values = "  ".join(f"{name} {last.get(name, float('nan')):.3f}"
                               for name in self._spec.objective_names)
            self._print(f"{head} finished in {took:.0f}s: {values}  "
                        f"[{last.get('eval_description', '')}]")
        else:
            self._print(f"{head} stopped at epoch {last.get('epoch')} after {took:.0f}s")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._print(f"trial {trial.trial_id} ({short_config(trial.config)}) crashed; Ray "
                    f"retries it from its last checkpoint (max_failures "
                    f"{self._spec.max_failures})")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended += 1
        self._print(f"trial {trial.trial_id} ({short_config(trial.config)}) failed: "
                    f"{trial.error_file or 'see Ray logs'}")
