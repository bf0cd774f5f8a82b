"""Ray Tune callback that records a sweep in MLflow through a :class:`SweepTracker`.

It runs in the Tune driver: a trial start opens the trial's child run, each result (one per
epoch, see docs/CONTRACTS.md) becomes one batch of metrics at step ``epoch``, a retry after
a crash is counted (tag ``tgo.retries``), and a trial's end closes its child run as
``finished``, ``pruned at rung r (epoch e)``, ``stopped: ...`` or ``failed: <error>``. After
every finished trial the front is recomputed from the store (so a resumed sweep keeps its
earlier trials), and every front member without a model gets one, rebuilt from its last
checkpoint by ``load_model``.

An MLflow outage does not stop the sweep. Every write is an *op* (:mod:`tune.tracking.journal`);
when the store cannot be reached, the op is appended to the trial's
``mlflow_pending.jsonl`` in its Ray folder instead, and so are the trial's later ops (their
order matters). The store is tried again at most every ``retry_after_s`` seconds; once it
answers, the pending ops are replayed (:func:`replay`) and the front is rebuilt. Whatever
is still pending when the sweep ends is backfilled by ``tgo sweep sync``
(:mod:`tune.tracking.sync`).

Example:
    >>> callback = MlflowSweepCallback(tracker, pruned_lookup=scheduler.pruned.get,
    ...                                load_model=tgo.checkpoint.load_model)  # doctest: +SKIP
    >>> raytune.Tuner(trainable, run_config=raytune.RunConfig(callbacks=[callback]))
    ... # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

from ray import tune as raytune

from tune.tracking import journal
from tune.tracking.ops import (final_metrics, log_front_models, metrics_of, replay,
                             result_epoch)
from tune.tracking import SweepTracker, TrackingUnavailable, TrialOutcome, schema

__all__ = ["FRONT_EVERY_S", "MlflowSweepCallback"]

_log = logging.getLogger(__name__)

ORPHAN_TEXT = "ended after Ray's last state snapshot; not in the resumed sweep's results"

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


#: Default of ``MlflowSweepCallback(front_every_s=...)``, seconds between front rebuilds.
FRONT_EVERY_S = 30.0
#: The gap after a rebuild is at least this many times its duration (rebuilds <= 10%).
FRONT_GAP_FACTOR = 9.0


def _trial_folder(trial: Any) -> Path | None:
    """The trial's Ray folder on this machine: its storage folder when that is local (it
    survives the driver), else the driver's staging copy that Ray uploads."""
    for attr in ("path", "local_path"):
        with contextlib.suppress(Exception):
            value = getattr(trial, attr)
            if value and "://" not in str(value) and Path(value).parent.is_dir():
                return Path(value)
    return None


class MlflowSweepCallback(raytune.Callback):
    """Drive a :class:`SweepTracker` from Ray Tune's trial events.

    Args:
        tracker: the sweep's tracker; :meth:`setup` starts it (idempotent).
        pruned_lookup: ``trial_id -> info or None``; an info object with ``.epoch`` and
            ``.rung`` (None for pruners without rungs) marks the trial as pruned, with tag
            ``pruned at rung r (epoch e)`` or ``pruned at epoch e`` (``scheduler.pruned.get``).
        load_model: ``checkpoint_dir -> torch.nn.Module`` (or ``(module, TrainConfig)`` as
            ``tgo.checkpoint.load_model`` returns); None logs no models.
        experiment_path: the sweep's Ray folder; :meth:`setup` records the parent run id
            there (``mlflow_sweep.json``) for ``tgo sweep sync``.
        retry_after_s: after a failed write, seconds before the store is tried again.
        front_every_s: rebuild the front (a search over every finished child, four
            artifacts, the plots) at most this often while trials run; always at the end.
            ``benchmarks/load.py``: rebuilt after every trial, it was 80% of the driver's
            time in a sweep of 200 one-epoch trials. A rebuild that takes longer than a
            ninth of this (thousands of trials) pushes the next one further out, so
            rebuilds stay within 10% of the driver's time; 0 rebuilds after every trial.

    A model that cannot be rebuilt or logged is reported as a warning (the sweep goes on).
    An unreachable store never raises out of a hook: the writes wait in the trials' Ray
    folders (see the module docstring).
    """

    def __init__(self, tracker: SweepTracker, *,
                 pruned_lookup: Callable[[str], Any] | None = None,
                 load_model: Callable[[str], Any] | None = None,
                 experiment_path: str | os.PathLike | None = None,
                 retry_after_s: float = 15.0, front_every_s: float | None = None) -> None:
        self.tracker = tracker
        self._pruned_lookup = pruned_lookup or (lambda trial_id: None)
        self._load_model = load_model
        self._objectives = {o.name for o in tracker.objectives}
        self.experiment_path = None if experiment_path is None else Path(experiment_path)
        self.retry_after_s = retry_after_s
        self.front_every_s = FRONT_EVERY_S if front_every_s is None else front_every_s
        self._front_at = -math.inf   # monotonic time of the last front rebuild
        self._front_gap = self.front_every_s   # seconds to the next (grows with the sweep)
        self._nodes: dict[str, str] = {}      # run id -> Ray node id last tagged
        self._retries: dict[str, int] = {}    # trial id -> retries seen
        self._waiting: dict[str, Path] = {}   # trial id -> folder holding its pending ops
        self._down_since: float | None = None  # monotonic time of the last failed write
        self._front_stale = False
        self._lost_checked = False
        self._open: set[str] = set()    # trials started by this driver and not yet ended
        #: Seconds this callback spent writing to MLflow (and rebuilding the front).
        self.seconds = 0.0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_nodes={}, _retries={}, _waiting={}, _down_since=None,
                     _lost_checked=False, _front_at=-math.inf, _open=set(),
                     _front_gap=self.front_every_s)
        return state

    @property
    def pruned_lookup(self) -> Callable[[str], Any]:
        """``trial_id -> info or None``: what the pruner recorded of a trial."""
        return self._pruned_lookup

    @property
    def pending_trials(self) -> list[str]:
        """Trials whose MLflow writes wait in their Ray folders."""
        return sorted(self._waiting)

    # -- Ray hooks

    def setup(self, **info: Any) -> None:
        self.tracker.start()
        if self.experiment_path is not None:
            journal.write_sweep_info(self.experiment_path, {
                "parent_run_id": self.tracker.parent_run_id,
                "experiment_id": self.tracker.experiment_id,
                "experiment": self.tracker.experiment})
            for folder in journal.pending_folders(self.experiment_path):  # a resumed sweep
                ops = journal.read(folder)
                if ops and ops[0].get("trial_id"):
                    self._waiting[ops[0]["trial_id"]] = folder

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if not self._lost_checked:
            self._lost_checked = True
            self._close_lost(trials)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._open.add(trial.trial_id)
        self._submit(trial, {"op": "open", "trial_id": trial.trial_id,
                             "config": dict(trial.config or {})})

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        keep = metrics_of(result, self._objectives)
        keep.update({k: result[k] for k in ("train_config", "ray_node_id", "timestamp",
                                            "epoch", "training_iteration") if k in result})
        self._submit(trial, {"op": "result", "trial_id": trial.trial_id, "result": keep})

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._retries[trial.trial_id] = self._retries.get(trial.trial_id, 0) + 1
        self._submit(trial, {"op": "recover", "trial_id": trial.trial_id,
                             "retries": self._retries[trial.trial_id],
                             "error": _error_text(trial)})

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._open.discard(trial.trial_id)
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
            reason = f"at epoch {result_epoch(result)} before the end of training"
        self._finish(trial, final_metrics(result, self._objectives), outcome, reason)
        if outcome is TrialOutcome.FINISHED:
            self._front_stale = True
        self._refresh_front(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._open.discard(trial.trial_id)
        result = trial.last_result or {}
        self._finish(trial, {"epoch": result_epoch(result)}, TrialOutcome.FAILED,
                     _error_text(trial))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        done = all(t.status in ("TERMINATED", "ERROR") for t in trials)
        status = "FINISHED" if done else "KILLED"  # KILLED: resumable
        if done:
            self._close_stopped(trials)
        if self._waiting:
            self._try_flush(trials, force=True)
        if not self._waiting:
            try:
                self._refresh_front(trials, force=True)
                if not self._front_stale:   # else the rebuild failed: the store went down
                    self.tracker.finish(status)
                    return
            except TrackingUnavailable as exc:
                self._went_down(exc)
        if self.experiment_path is not None:
            journal.append(self.experiment_path, {"op": "finish_sweep", "status": status})
        where = self.experiment_path or "the trials' Ray folders"
        _log.warning("MLflow (%s) was unreachable: the records of %d trial(s) wait in %s; "
                     "run `tgo sweep sync %s` when the server is back",
                     self.tracker.tracking_uri, len(self._waiting), where, where)

    def _close_stopped(self, trials: list) -> None:
        """Close the child runs of trials Ray stopped without telling callbacks: a
        ``stop`` rule ended the sweep while they ran (Ray marks them TERMINATED). The trial
        whose final result ended the sweep had trained every epoch: it is finished."""
        for trial in trials:
            if trial.trial_id in self._open and trial.status == "TERMINATED":
                self._open.discard(trial.trial_id)
                result = trial.last_result or {}
                if result.get("done_training"):
                    outcome, reason = TrialOutcome.FINISHED, None
                    self._front_stale = True
                else:
                    outcome = TrialOutcome.STOPPED
                    reason = (f"at epoch {result_epoch(result)}: the sweep ended (its stop "
                              "rule) while the trial ran")
                self._finish(trial, final_metrics(result, self._objectives), outcome, reason)

    def _close_lost(self, trials: list) -> None:
        """Close child runs left RUNNING by a driver that died before Ray saved their trial.

        Ray saves its experiment state every few seconds; a trial started in between is
        not in the restored sweep and never runs again, so its child would stay RUNNING.
        One that had already ended keeps its record, tagged ``tgo.orphan`` (:data:`tune.tracking.schema.ORPHAN`): the resumed
        sweep's sampler and Ray's results do not know it (Ray runs another trial instead).
        """
        known = {t.trial_id for t in trials}
        try:
            unknown = {t: rs for t, rs in self.tracker.children().items() if t not in known}
            for trial_id, (run_id, status) in unknown.items():
                if status == "RUNNING":
                    self.tracker.finish_trial(run_id, {}, TrialOutcome.STOPPED,
                                              "lost: the driver died before Ray recorded "
                                              "this trial, so the resumed sweep does not run it")
                    _log.warning("closed the child run of trial %s: its driver died before "
                                 "Ray recorded the trial", trial_id)
                else:   # it ended (and is kept as it ended), but Ray never saved it
                    off_front = {schema.PARETO: "false"} if status == "FINISHED" else {}
                    self.tracker.set_tags(run_id, {schema.ORPHAN: ORPHAN_TEXT, **off_front})
        except TrackingUnavailable as exc:
            self._went_down(exc)

    # -- writing, or keeping for later

    def _finish(self, trial: Any, final: dict, outcome: TrialOutcome, reason: str | None):
        checkpoint = trial.checkpoint
        self._submit(trial, {"op": "finish", "trial_id": trial.trial_id,
                             "config": dict(trial.config or {}), "final": final,
                             "outcome": outcome.value, "reason": reason,
                             "checkpoint": None if checkpoint is None else str(checkpoint.path),
                             "timestamp_ms": int(time.time() * 1000)})

    def _submit(self, trial: Any, op: dict[str, Any]) -> None:
        """Write ``op`` now, or keep it in the trial's folder when the store is down (or
        when earlier ops of the trial are still kept: their order matters)."""
        self._try_flush([trial])
        if op["trial_id"] not in self._waiting and self._down_since is None:
            start = time.perf_counter()
            try:
                replay(self.tracker, op, self._nodes)
                return
            except TrackingUnavailable as exc:
                self._went_down(exc)
            finally:
                self.seconds += time.perf_counter() - start
        folder = self._waiting.get(op["trial_id"]) or _trial_folder(trial)
        if folder is None:
            raise TrackingUnavailable(self.tracker.tracking_uri, op["op"],
                                      f"the store is down and trial {op['trial_id']} has no "
                                      "local folder to keep its records in")
        journal.append(folder, op)
        self._waiting[op["trial_id"]] = folder

    def _went_down(self, exc: TrackingUnavailable) -> None:
        if self._down_since is None:
            _log.warning("MLflow unreachable, training goes on; its records are kept in the "
                         "trials' Ray folders until the store answers again: %s", exc)
        self._down_since = time.monotonic()

    def _try_flush(self, trials: list, force: bool = False) -> None:
        """After an outage, at most every ``retry_after_s``: replay the kept ops."""
        if self._down_since is None and not self._waiting:
            return
        if not force and self._down_since is not None and \
                time.monotonic() - self._down_since < self.retry_after_s:
            return
        self._down_since = None
        try:
            for trial_id, folder in sorted(self._waiting.items()):
                ops = journal.read(folder)
                for done, op in enumerate(ops):
                    try:
                        replay(self.tracker, op, self._nodes)
                    except TrackingUnavailable:
                        journal.mark_synced(folder, done)
                        raise
                journal.mark_synced(folder, len(ops))
                del self._waiting[trial_id]
        except TrackingUnavailable as exc:
            self._went_down(exc)
            return
        _log.warning("MLflow answers again: the kept records were logged")
        self._front_stale = True
        self._refresh_front(trials, force=True)

    def _refresh_front(self, trials: list, force: bool = False) -> None:
        if not self._front_stale or self._down_since is not None:
            return
        if not force and time.monotonic() - self._front_at < self._front_gap:
            return
        start = time.perf_counter()
        self._front_at = time.monotonic()
        try:
            front = self.tracker.update_front(self.tracker.finished_records())
            self._front_stale = False
            if self._load_model is not None:
                live = {t.trial_id: t.checkpoint for t in trials
                        if getattr(t, "checkpoint", None) is not None}
                log_front_models(self.tracker, front, self._load_model, live)
        except TrackingUnavailable as exc:
            self._went_down(exc)
        finally:
            spent = time.perf_counter() - start
            self.seconds += spent
            # A rebuild reads every finished child: at thousands of trials it takes seconds.
            # Wait at least 9 times as long before the next, so rebuilds stay <= 10% of the
            # driver's time (0 keeps "after every finished trial").
            self._front_gap = self.front_every_s and max(self.front_every_s,
                                                         FRONT_GAP_FACTOR * spent)
