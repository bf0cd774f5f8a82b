"""Ray Tune callback that records a sweep in MLflow through a :class:`SweepTracker`.

It runs in the Tune driver: a trial start opens the trial's child run, each result (one per
epoch, see docs/CONTRACTS.md) becomes one batch of metrics at step ``epoch``, and a trial's
end closes its child run as ``finished``, ``pruned at rung r (epoch e)``, ``stopped: ...`` or
``failed: <error>``. After every finished trial the front is recomputed from the store (so
a resumed sweep keeps its earlier trials), and every front member without a model gets one,
rebuilt from its last checkpoint by ``load_model``.

Example:
    >>> callback = MlflowSweepCallback(tracker, pruned_lookup=scheduler.pruned.get,
    ...                                load_model=tgo.checkpoint.load_model)  # doctest: +SKIP
    >>> raytune.Tuner(trainable, run_config=raytune.RunConfig(callbacks=[callback]))
    ... # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Callable, Mapping

from ray import tune as raytune

from tune.tracking import SweepTracker, TrackingUnavailable, TrialOutcome

__all__ = ["MlflowSweepCallback", "RAY_BOOKKEEPING_KEYS", "FINAL_KEYS"]

_log = logging.getLogger(__name__)

#: Keys Ray adds to every result; not metrics of the trial.
RAY_BOOKKEEPING_KEYS = frozenset({
    "time_this_iter_s", "time_total_s", "timestamp", "training_iteration", "time_since_restore",
    "iterations_since_restore", "timesteps_since_restore", "timesteps_total", "episodes_total",
    "pid", "hostname", "node_ip", "date", "done", "trial_id", "experiment_id", "experiment_tag",
    "config", "should_checkpoint", "checkpoint_dir_name", "warmup_time", "epoch"})
#: Result keys that are settings or descriptions, not metrics (Ray may flatten the nested
#: ``train_config`` dict into ``train_config/<field>`` or ``train_config.<field>``).
NON_METRIC_PREFIXES = ("eval_", "train_config", "config/", "config.", "ray_node_id")
#: Keys of the last result only (the test-split objectives and the attack behind them).
FINAL_KEYS = frozenset({"clean_acc", "robust_acc", "spike_rate", "near_threshold",
                        "done_training"})


def _epoch(result: Mapping[str, Any]) -> int:
    for key in ("epoch", "training_iteration"):
        value = result.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def _final(result: Mapping[str, Any], objectives: set[str]) -> dict[str, Any]:
    keep = FINAL_KEYS | objectives | {"epoch"}
    return {k: v for k, v in result.items() if k in keep or k.startswith("eval_")}


def _error_text(trial: Any) -> str:
    """The last line of the trial's error trace, e.g. ``ValueError: boom``.

    Ray writes the trace to the trial's local ``error.txt`` before calling back (the copy in
    the storage path may come later).
    """
    text = ""
    with contextlib.suppress(Exception):  # a missing file still leaves the status 'failed'
        local = trial.error_file
        text = Path(local).read_text() if local and Path(local).is_file() else trial.get_error()
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[-1][:500] if lines else "error (no message recorded)"


class MlflowSweepCallback(raytune.Callback):
    """Drive a :class:`SweepTracker` from Ray Tune's trial events.

    Args:
        tracker: the sweep's tracker; :meth:`setup` starts it (idempotent).
        pruned_lookup: ``trial_id -> info or None``; an info object with ``.epoch`` and
            ``.rung`` (None for pruners without rungs) marks the trial as pruned, with tag
            ``pruned at rung r (epoch e)`` or ``pruned at epoch e`` (``scheduler.pruned.get``).
        load_model: ``checkpoint_dir -> torch.nn.Module`` (or ``(module, TrainConfig)`` as
            ``tgo.checkpoint.load_model`` returns); None logs no models.

    A model that cannot be rebuilt or logged is reported as a warning (the sweep goes on);
    an unreachable store raises :class:`TrackingUnavailable` out of the callback.
    """

    def __init__(self, tracker: SweepTracker, *,
                 pruned_lookup: Callable[[str], Any] | None = None,
                 load_model: Callable[[str], Any] | None = None) -> None:
        self.tracker = tracker
        self._pruned_lookup = pruned_lookup or (lambda trial_id: None)
        self._load_model = load_model
        self._objectives = {o.name for o in tracker.objectives}
        self._nodes: dict[str, str] = {}   # run id -> Ray node id last tagged

    # -- Ray hooks

    def setup(self, **info: Any) -> None:
        self.tracker.start()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._run(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        run_id = self._run(trial)
        config = result.get("train_config")
        if isinstance(config, Mapping):
            self.tracker.log_params(run_id, config)
        node = result.get("ray_node_id")
        if isinstance(node, str) and node and self._nodes.get(run_id) != node:
            self.tracker.set_tags(run_id, {"ray.node_id": node})
            self._nodes[run_id] = node
        metrics = {k: v for k, v in result.items()
                   if k not in RAY_BOOKKEEPING_KEYS and k not in FINAL_KEYS
                   and k not in self._objectives and not k.startswith(NON_METRIC_PREFIXES)}
        stamp = result.get("timestamp")
        self.tracker.log_epoch(run_id, metrics, _epoch(result),
                               timestamp_ms=int(stamp * 1000) if stamp else None)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        pruned = self._pruned_lookup(trial.trial_id)
        if pruned is not None:
            rung = getattr(pruned, "rung", None)
            reason = (f"at epoch {pruned.epoch}" if rung is None
                      else f"at rung {rung} (epoch {pruned.epoch})")
            outcome = TrialOutcome.PRUNED
        elif result.get("done_training") or (
                "done_training" not in result and self._objectives <= set(result)):
            outcome, reason = TrialOutcome.FINISHED, None
        else:
            outcome = TrialOutcome.STOPPED
            reason = f"at epoch {_epoch(result)} before the end of training"
        self.tracker.finish_trial(self._run(trial), _final(result, self._objectives), outcome,
                                  reason, checkpoint_path=self._checkpoint_path(trial))
        if outcome is TrialOutcome.FINISHED:
            self._refresh_front(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        self.tracker.finish_trial(self._run(trial), {"epoch": _epoch(result)},
                                  TrialOutcome.FAILED, _error_text(trial),
                                  checkpoint_path=self._checkpoint_path(trial))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        done = all(t.status in ("TERMINATED", "ERROR") for t in trials)
        self.tracker.finish("FINISHED" if done else "KILLED")  # KILLED: resumable

    # -- helpers

    def _run(self, trial: Any) -> str:
        return self.tracker.child_run(trial.trial_id, dict(trial.config or {}))

    @staticmethod
    def _checkpoint_path(trial: Any) -> str | None:
        checkpoint = trial.checkpoint
        return None if checkpoint is None else str(checkpoint.path)

    def _refresh_front(self, trials: list) -> None:
        front = self.tracker.update_front(self.tracker.finished_records())
        if self._load_model is None:
            return
        by_id = {t.trial_id: t for t in trials}
        for record in front:
            if record.get("model_logged"):
                continue
            trial = by_id.get(record["trial_id"])
            checkpoint = trial.checkpoint if trial is not None else None
            try:
                if checkpoint is not None:
                    with checkpoint.as_directory() as folder:
                        built = self._load_model(folder)
                elif record.get("checkpoint"):
                    built = self._load_model(record["checkpoint"])
                else:
                    _log.warning("front member %s has no checkpoint; no model logged",
                                 record["trial_id"])
                    continue
                model, config = built if isinstance(built, tuple) else (built, None)
                config = config.to_dict() if hasattr(config, "to_dict") else record["params"]
                self.tracker.log_front_model(record["run_id"], model, config)
            except TrackingUnavailable:
                raise
            except Exception as exc:  # one broken checkpoint must not end the sweep
                _log.warning("could not log the model of front member %s: %s: %s",
                             record["trial_id"], type(exc).__name__, exc)
