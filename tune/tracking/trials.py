"""The child runs of a sweep's trials: opened once, params, per-epoch metrics, the end.

:class:`TrialLogging` is the part of :class:`tune.tracking.SweepTracker` that writes child
runs; it relies on the tracker's plumbing (``client``, ``guard``, ``_search``,
``_log_batch``) and caches (``_children``, ``_params``, ``_steps``, ``finished_before``).

Example:
    >>> _run_name("3a1b_00000", {"margin_weight": 0.42, "timesteps": 4})
    'trial_3a1b_00000_lam0.42_T4'
"""

from __future__ import annotations

import enum
import math
import numbers
import time
from typing import Any, Mapping, Sequence

from tgo.config import as_enum
from tune.tracking import schema
from tune.tracking.schema import (MAX_PARAM_VALUE, MAX_TAG_VALUE, checked_text, flatten, key,
                                  number, text)

__all__ = ["TrialLogging", "TrialOutcome"]

# Child-run name: trial id plus the knobs that tell TGO trials apart, in this order.
_NAME_KEYS = (("margin_weight", "lam", "{:.2f}"), ("margin", "d", "{:.2f}"),
              ("noise_scale", "s", "{:.2f}"), ("timesteps", "T", "{}"))


class TrialOutcome(str, enum.Enum):
    """How a trial ended; sets the child's ``status`` tag and its MLflow run status."""

    FINISHED = "finished"
    PRUNED = "pruned"
    FAILED = "failed"
    STOPPED = "stopped"


_RUN_STATUS = {TrialOutcome.FINISHED: "FINISHED", TrialOutcome.PRUNED: "KILLED",
               TrialOutcome.FAILED: "FAILED", TrialOutcome.STOPPED: "KILLED"}


def _ended_for_good(run: Any) -> bool:
    """Whether a child run ended finished, pruned or stopped (not failed, not running)."""
    status = run.data.tags.get(schema.STATUS, "")
    return run.info.status in ("FINISHED", "KILLED") and \
        status.split(" ", 1)[0].rstrip(":") in ("finished", "pruned", "stopped")


def _run_name(trial_id: str, params: Mapping[str, Any]) -> str:
    parts = [f"trial_{trial_id}"]
    for name, short, fmt in _NAME_KEYS:
        value = params.get(name)
        if number(value) is not None:
            parts.append(short + fmt.format(int(value) if fmt == "{}" else float(value)))
    return "_".join(parts)


class TrialLogging:
    """Child runs of :class:`tune.tracking.SweepTracker` (a mixin of it)."""

    def _require_parent(self) -> str:
        if self._parent is None or self._client is None:
            raise RuntimeError("SweepTracker: call start() before logging trials")
        return self._parent

    def child_run(self, trial_id: str, params: Mapping[str, Any]) -> str:
        """The child run of ``trial_id``, created once under the parent (tag ``tgo.trial_id``).

        A retried or resumed trial gets its existing child back (set RUNNING again), with
        any param keys it did not have yet. Params are the trial's config, flattened. A
        child that already ended finished, pruned or stopped stays as it is and its trial
        id joins :attr:`finished_before`: Ray runs such a trial again when the driver died
        between its end and Ray's next state snapshot, and nothing of it may be logged
        twice. (A failed child is reopened: ``tgo sweep resume`` retries errored trials.)

        Example:
            >>> tracker.child_run("3a1b_00000", {"margin_weight": 0.42})   # doctest: +SKIP
        """
        parent = self._require_parent()
        trial_id = checked_text(trial_id, "trial_id")
        if trial_id in self._children:
            return self._children[trial_id]
        with self.guard(f"open the child run of trial {trial_id}"):
            found = self._earlier_child(parent, trial_id)
            if found:
                run_id = found[0].info.run_id
                self._params[run_id] = set(found[0].data.params)
                if _ended_for_good(found[0]):
                    self.finished_before.add(trial_id)
                else:
                    self._steps[run_id] = {
                        name: max(m.step for m in self.client.get_metric_history(run_id, name))
                        for name in found[0].data.metrics}
                    if found[0].info.status != "RUNNING":
                        self.client.update_run(run_id, status="RUNNING")
                        self.client.set_tag(run_id, schema.STATUS, "running")
            else:
                tags = {schema.PARENT: parent, schema.KIND: schema.KIND_TRIAL,
                        schema.TRIAL_ID: trial_id, schema.SWEEP_NAME: self.sweep_name,
                        schema.SPEC_HASH: self.spec_hash, schema.STATUS: "running"}
                run = self.client.create_run(self._experiment_id, tags=tags,
                                             run_name=_run_name(trial_id, flatten(params)))
                run_id = run.info.run_id
                self._params[run_id] = set()
                self._steps[run_id] = {}
            self._children[trial_id] = run_id
        self.log_params(run_id, params)
        return run_id

    def _earlier_child(self, parent: str, trial_id: str) -> list[Any]:
        """``[run]`` when the sweep's store held a child of ``trial_id`` before this tracker
        opened its first child, else ``[]``. One paginated read of the sweep's children, on
        the first call, not a search per trial: a filtered search scans the store, and at
        10,000 trials it made opening a child run twice as slow (``benchmarks/scale.py``)."""
        if self._earlier is None:
            self._earlier = {run.data.tags.get(schema.TRIAL_ID): run
                             for run in self._search(schema.children_filter(parent))}
        run = self._earlier.pop(trial_id, None)
        return [] if run is None else [run]

    def children(self) -> dict[str, tuple[str, str]]:
        """Trial id -> (run id, MLflow run status) of every child run of this sweep."""
        parent = self._require_parent()
        with self.guard("read the sweep's trials"):
            runs = self._search(schema.children_filter(parent))
        return {r.data.tags.get(schema.TRIAL_ID, r.info.run_id): (r.info.run_id, r.info.status)
                for r in runs}

    def running_children(self) -> dict[str, str]:
        """Trial id -> run id of this sweep's child runs still marked RUNNING."""
        return {t: run for t, (run, status) in self.children().items() if status == "RUNNING"}

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set (or overwrite) string tags on a run."""
        from mlflow.entities import RunTag

        with self.guard(f"tag run {run_id}"):
            self._log_batch(run_id, tags=[RunTag(key(k), str(v)) for k, v in tags.items()])

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log the (flattened) params whose keys the run does not have yet.

        MLflow params are write-once, so a key already logged keeps its first value.
        """
        from mlflow.entities import Param

        known = self._params.setdefault(run_id, set())
        new = {k: text(v, MAX_PARAM_VALUE) for k, v in
               ((key(k), v) for k, v in flatten(params).items()) if k not in known}
        if not new:
            return
        with self.guard(f"log params of run {run_id}"):
            self._log_batch(run_id, params=[Param(k, v) for k, v in new.items()])
        known.update(new)

    def log_epoch(self, run_id: str, metrics: Mapping[str, Any], epoch: int, *,
                  timestamp_ms: int | None = None) -> None:
        """Log the numeric values of ``metrics`` at step ``epoch`` (one ``log_batch``).

        Non-numeric values and booleans are skipped; NaN and inf are kept (a diverged loss
        is information). Idempotent per (run, metric, step): MLflow metrics are append-only
        (logging ``(key, step)`` again would add a second point), so a key is logged only at
        steps above the highest one the run already holds, as read from the store when the
        run was opened and kept since. A trial that Ray reruns from an older checkpoint, a
        replayed journal op or a resumed driver therefore never logs an epoch twice; the
        run keeps the first values of an epoch.
        """
        from mlflow.entities import Metric

        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"epoch: expected an integer >= 0, got {epoch!r}")
        stamp = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
        items = [Metric(key(k), v, stamp, int(epoch)) for k, v in
                 ((k, number(v)) for k, v in flatten(metrics).items()) if v is not None]
        self._log_new_points(run_id, items, f"log epoch {epoch} of run {run_id}")

    def _log_new_points(self, run_id: str, items: Sequence[Any], action: str) -> None:
        """Log the metric points above each key's highest logged step, then remember them."""
        held = self._steps.setdefault(run_id, {})
        new = [m for m in items if m.step > held.get(m.key, -1)]
        if new:
            with self.guard(action):
                self._log_batch(run_id, metrics=new)
            for m in new:
                held[m.key] = max(m.step, held.get(m.key, -1))

    def finish_trial(self, run_id: str, final: Mapping[str, Any], status: TrialOutcome | str,
                     reason: str | None = None, *, checkpoint_path: str | None = None,
                     timestamp_ms: int | None = None) -> None:
        """Close a child run: final metrics, ``eval_*`` tags, ``status`` tag and run status.

        Args:
            final: the trial's last result; numbers become metrics at step ``final["epoch"]``
                (0 when absent), ``eval_*`` keys (the attack behind ``robust_acc``) tags.
            status: ``finished`` (run FINISHED), ``pruned`` (KILLED; ``reason`` such as
                ``"at rung 1 (epoch 3)"``), ``failed`` (FAILED; ``reason`` = the error) or
                ``stopped`` (KILLED; stopped before the end of training, not pruned).
            checkpoint_path: where the trial's last checkpoint lives (tag ``tgo.checkpoint``).
            timestamp_ms: timestamp of the final metrics (default: now); pass the same one
                when replaying a finish, so the store drops the repeat (see :meth:`log_epoch`).

        Example:
            >>> tracker.finish_trial(run, {}, "pruned", "at rung 1 (epoch 3)")  # doctest: +SKIP
        """
        from mlflow.entities import Metric, RunTag

        outcome = as_enum(TrialOutcome, status, "status")
        label = {TrialOutcome.FINISHED: "finished",
                 TrialOutcome.PRUNED: f"pruned {reason}" if reason else "pruned",
                 TrialOutcome.FAILED: f"failed: {reason or 'unknown error'}",
                 TrialOutcome.STOPPED: f"stopped: {reason or 'before the end of training'}"}
        flat = flatten(final)
        epoch = number(flat.get("epoch"))
        step = int(epoch) if epoch is not None and math.isfinite(epoch) else 0
        stamp = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
        metrics = [Metric(key(k), v, stamp, step) for k, v in
                   ((k, number(v)) for k, v in flat.items()
                    if k != "epoch" and not k.startswith(schema.EVAL_PREFIX)) if v is not None]
        tags = {k: text(v, MAX_TAG_VALUE) for k, v in flat.items()
                if k.startswith(schema.EVAL_PREFIX)}
        tags[schema.STATUS] = text(label[outcome], MAX_TAG_VALUE)
        if checkpoint_path:
            tags[schema.CHECKPOINT] = str(checkpoint_path)
        self._log_new_points(run_id, metrics, f"finish run {run_id}")
        with self.guard(f"finish run {run_id}"):
            self._log_batch(run_id, tags=[RunTag(key(k), v) for k, v in tags.items()])
            self.client.set_terminated(run_id, status=_RUN_STATUS[outcome])
