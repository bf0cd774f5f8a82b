"""``tgo sweep sync SWEEP``: backfill MLflow with what a sweep could not log.

During an MLflow outage :class:`tune.tracking.callback.MlflowSweepCallback` keeps every write
it could not make in the trials' Ray folders (:mod:`tune.tracking.journal`). Once the server is back,
:func:`sync_sweep` replays them in order under the sweep's parent run, rebuilds the Pareto
front (artifacts, hypervolume, ``pareto`` tags) and logs the models of new front members.
Replays are idempotent, so running it twice, or after a sync cut short, logs nothing twice.

Example:
    >>> report = sync_sweep("runs/digits-quick")   # doctest: +SKIP
    >>> print(report)                              # doctest: +SKIP
    synced 14 records of 3 trials; front: 4 configs, 1 new model; parent run FINISHED
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from tune.tracking import journal

__all__ = ["SyncReport", "sync_sweep"]


@dataclasses.dataclass
class SyncReport:
    """What :func:`sync_sweep` wrote."""

    experiment_path: Path
    parent_run_id: str
    ops: int
    trials: list[str]
    front_size: int
    models_logged: int
    parent_status: str | None

    def __str__(self) -> str:
        status = f"parent run {self.parent_status}" if self.parent_status else \
            "parent run left as it was"
        return (f"synced {self.ops} records of {len(self.trials)} trials; front: "
                f"{self.front_size} configs, {self.models_logged} new model(s); {status}")


def sync_sweep(path: str | os.PathLike) -> SyncReport:
    """Replay the pending MLflow writes of the sweep whose Ray results live at ``path``.

    Raises:
        FileNotFoundError: ``path`` is not a sweep folder, or it has no MLflow record
            (``mlflow_sweep.json``, written when the sweep's parent run was created).
        TrackingUnavailable: the store still cannot be reached (nothing is lost: the
            pending writes stay where they are).
    """
    from tgo.checkpoint import load_model
    from tune.tracking.ops import log_front_models, replay
    from tune.spec import SPEC_FILE
    from tune.tracking import make_tracker
    from tune.spec import load_spec

    experiment_path = Path(path).expanduser().resolve()
    if not (experiment_path / SPEC_FILE).is_file():
        raise FileNotFoundError(f"path: no sweep at {experiment_path} (expected {SPEC_FILE} "
                                "there, written when the sweep started)")
    info = journal.read_sweep_info(experiment_path)
    if not info or not info.get("parent_run_id"):
        raise FileNotFoundError(f"path: {experiment_path} has no {journal.SWEEP_FILE}: the "
                                "sweep never reached MLflow, so there is no parent run to "
                                "sync into")
    spec = load_spec(experiment_path / SPEC_FILE).resolved()
    tracker = make_tracker(spec, parent_run_id=info["parent_run_id"])
    before = _parent_status(tracker)
    tracker.start()   # sets the parent RUNNING; restored or finished below
    nodes: dict[str, str] = {}
    ops, trials = 0, []
    for folder in journal.pending_folders(experiment_path):
        pending = journal.read(folder)
        for done, op in enumerate(pending):
            try:
                replay(tracker, op, nodes)
            except BaseException:
                journal.mark_synced(folder, done)
                raise
        journal.mark_synced(folder, len(pending))
        ops += len(pending)
        trials.extend(sorted({op["trial_id"] for op in pending if op.get("trial_id")}))
    front = tracker.update_front(tracker.finished_records())
    models = log_front_models(tracker, front, load_model)
    sweep_ops = journal.read(experiment_path)
    status = next((op["status"] for op in reversed(sweep_ops)
                   if op.get("op") == "finish_sweep"), before)
    if status in ("FINISHED", "KILLED", "FAILED"):
        tracker.finish(status)
    journal.mark_synced(experiment_path, len(sweep_ops))
    return SyncReport(experiment_path, tracker.parent_run_id, ops + len(sweep_ops), trials,
                      len(front), models, status)


def _parent_status(tracker) -> str | None:
    """The parent run's status before the sync touches it (None when it cannot be read)."""
    from mlflow import MlflowClient

    from tune.tracking import check_reachable

    check_reachable(tracker.tracking_uri, tracker.probe_timeout_s)
    with tracker.guard("read the parent run"):
        return MlflowClient(tracker.tracking_uri).get_run(tracker.parent_run_id).info.status
