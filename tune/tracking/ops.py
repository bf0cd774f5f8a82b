"""The MLflow writes of a sweep as replayable *ops* (see :mod:`tune.tracking.journal`).

:class:`tune.tracking.callback.MlflowSweepCallback` turns Ray Tune's trial events into ops and
:func:`replay` applies one to a :class:`~tune.tracking.SweepTracker`; ``tgo sweep sync``
(:mod:`tune.tracking.sync`) replays the ops an MLflow outage kept. Every op is idempotent: replaying
it again logs nothing twice (docs/CONTRACTS.md).

Example:
    >>> replay(tracker, {"op": "open", "trial_id": "3a1b_00000",
    ...                  "config": {"margin": 0.5}})                    # doctest: +SKIP
    'e4f1...'
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Callable, Mapping

from tgo.checkpoint import CHECKPOINT_FILE
from tune.objectives import OBJECTIVE_NAMES
from tune.tracking import SweepTracker, TrackingUnavailable, schema

__all__ = ["FINAL_KEYS", "NON_METRIC_PREFIXES", "RAY_BOOKKEEPING_KEYS", "final_metrics",
           "log_front_models", "metrics_of", "replay", "result_epoch"]

_log = logging.getLogger(__name__)

#: Keys Ray adds to every result; not metrics of the trial.
RAY_BOOKKEEPING_KEYS = frozenset({
    "time_this_iter_s", "time_total_s", "timestamp", "training_iteration", "time_since_restore",
    "iterations_since_restore", "timesteps_since_restore", "timesteps_total", "episodes_total",
    "pid", "hostname", "node_ip", "date", "done", "trial_id", "experiment_id", "experiment_tag",
    "config", "should_checkpoint", "checkpoint_dir_name", "warmup_time", "epoch"})
#: Result keys that are settings or descriptions, not metrics (Ray may flatten the nested
#: ``train_config`` dict into ``train_config/<field>`` or ``train_config.<field>``).
NON_METRIC_PREFIXES = (schema.EVAL_PREFIX, "train_config", "config/", "config.", "ray_node_id")
#: Keys of the last result only (the test-split objectives and the attack behind them).
FINAL_KEYS = frozenset({*OBJECTIVE_NAMES, "done_training"})


def result_epoch(result: Mapping[str, Any]) -> int:
    for key in ("epoch", "training_iteration"):
        value = result.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def final_metrics(result: Mapping[str, Any], objectives: set[str]) -> dict[str, Any]:
    keep = FINAL_KEYS | objectives | {"epoch"}
    return {k: v for k, v in result.items() if k in keep or k.startswith("eval_")}


def metrics_of(result: Mapping[str, Any], objectives: set[str]) -> dict[str, Any]:
    return {k: v for k, v in result.items()
            if k not in RAY_BOOKKEEPING_KEYS and k not in FINAL_KEYS and k not in objectives
            and not k.startswith(NON_METRIC_PREFIXES)}


def replay(tracker: SweepTracker, op: Mapping[str, Any],
           nodes: dict[str, str] | None = None) -> str | None:
    """Apply one op (see :mod:`tune.tracking.journal`) to the store; idempotent.

    ``nodes`` (run id -> node id last tagged) saves repeating a node tag. Returns the
    trial's child run id (None for sweep-level ops).

    Raises:
        TrackingUnavailable: the store cannot be reached (nothing is half-applied that a
            second replay would duplicate).
        ValueError: an unknown op.
    """
    kind = op.get("op")
    if kind not in ("open", "result", "recover", "finish", "finish_sweep"):
        raise ValueError(f"op: expected open, result, recover, finish or finish_sweep, "
                         f"got {kind!r}")
    if kind == "finish_sweep":
        tracker.finish(op["status"])
        return None
    objectives = {o.name for o in tracker.objectives}
    run_id = tracker.child_run(op["trial_id"], op.get("config") or {})
    if kind == "open" or op["trial_id"] in tracker.finished_before:
        pass   # a trial whose end is recorded already: Ray's re-run is not logged twice
    elif kind == "result":
        result = op["result"]
        config = result.get("train_config")
        if isinstance(config, Mapping):
            tracker.log_params(run_id, config)
        node = result.get("ray_node_id")
        if isinstance(node, str) and node and (nodes or {}).get(run_id) != node:
            tracker.set_tags(run_id, {schema.NODE_ID: node})
            if nodes is not None:
                nodes[run_id] = node
        stamp = result.get("timestamp")
        tracker.log_epoch(run_id, metrics_of(result, objectives), result_epoch(result),
                          timestamp_ms=int(stamp * 1000) if stamp else None)
    elif kind == "recover":
        tracker.set_tags(run_id, {
            schema.RETRIES: str(op["retries"]),
            schema.STATUS: f"retrying after: {op['error']}"[:schema.MAX_TAG_VALUE]})
    else:   # finish
        tracker.finish_trial(run_id, op["final"], op["outcome"], op.get("reason"),
                             checkpoint_path=op.get("checkpoint"),
                             timestamp_ms=op.get("timestamp_ms"))
    return run_id


def log_front_models(tracker: SweepTracker, front: list, load_model: Callable[[str], Any],
                     checkpoint_dirs: Mapping[str, Any] | None = None) -> int:
    """Log a model for every front member that has none; returns how many were logged.

    ``checkpoint_dirs`` maps trial ids to live Ray checkpoints (preferred); otherwise a
    record's ``checkpoint`` tag (a folder) is used. A model that cannot be rebuilt or logged
    is a warning (the sweep goes on); an unreachable store raises TrackingUnavailable.
    """
    logged = 0
    for record in front:
        if record.get("model_logged"):
            continue
        checkpoint = (checkpoint_dirs or {}).get(record["trial_id"])
        try:
            with contextlib.ExitStack() as stack:
                if checkpoint is not None:
                    folder = stack.enter_context(checkpoint.as_directory())
                elif record.get("checkpoint") and Path(record["checkpoint"]).exists():
                    folder = record["checkpoint"]
                else:
                    _log.warning("front member %s has no checkpoint; no model logged",
                                 record["trial_id"])
                    continue
                built = load_model(folder)
                model, config = built if isinstance(built, tuple) else (built, None)
                config = config.to_dict() if hasattr(config, "to_dict") else record["params"]
                file = Path(folder) / CHECKPOINT_FILE
                tracker.log_front_model(record["run_id"], model, config,
                                        checkpoint=file if file.is_file() else None)
            logged += 1
        except TrackingUnavailable:
            raise
        except Exception as exc:  # one broken checkpoint must not end the sweep
            _log.warning("could not log the model of front member %s: %s: %s",
                         record["trial_id"], type(exc).__name__, exc)
    return logged
