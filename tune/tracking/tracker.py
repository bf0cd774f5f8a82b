"""MLflow records of a sweep: one parent run per sweep, one nested child run per trial.

Everything goes through an explicit :class:`mlflow.MlflowClient` and explicit run ids,
never MLflow's fluent "active run", which is global state that Ray callbacks cannot share
safely. The parent holds the spec (flat params and ``spec.yaml``), the Pareto front
(``pareto.csv``, ``pareto.json``, ``pareto.png``, ``pareto.html``) and a ``hypervolume``
metric whose step is the number of finished trials. A child holds the trial's config
(params), its per-epoch metrics (step = epoch), its final objectives, the description of
the attack behind them (``eval_*`` tags), its outcome (tag ``status``) and, for front
members only, the trained model (see :mod:`tune.tracking.front_models`).

This module holds the tracker's plumbing and its parent run; the child runs are written by
:class:`~tune.tracking.trials.TrialLogging`, the front by
:class:`~tune.tracking.front.FrontLogging`, tag names come from
:mod:`tune.tracking.schema`. Every call that fails because the store cannot be reached
raises :class:`TrackingUnavailable`; all of them pass through :meth:`SweepTracker.guard`,
the one place a buffering layer has to wrap.

Example:
    >>> tracker = SweepTracker("sqlite:///runs/mlflow.db", "tgo", "digits-quick", "ab12",
    ...                        {"space": {}}, objectives=[Objective("robust_acc", "max")])
    >>> parent = tracker.start()                                          # doctest: +SKIP
    >>> child = tracker.child_run("3a1b_00000", {"margin_weight": 0.42})  # doctest: +SKIP
    >>> tracker.log_epoch(child, {"val_robust_acc": 0.31}, epoch=1)       # doctest: +SKIP
    >>> tracker.finish_trial(child, {"robust_acc": 0.35}, "finished")     # doctest: +SKIP
    >>> front = tracker.update_front(tracker.finished_records())          # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from tune import versions
from tune.pareto import Objective
from tune.tracking import reader, schema
from tune.tracking.availability import (TrackingUnavailable, check_reachable, guarded,
                                        is_unavailable)
from tune.tracking.front import FrontLogging, as_objectives
from tune.tracking.schema import (MAX_METRICS_PER_BATCH, MAX_PARAM_VALUE,
                                  MAX_PARAMS_TAGS_PER_BATCH, checked_text, flatten, key, text)
from tune.tracking.trials import TrialLogging, TrialOutcome

__all__ = ["SweepTracker", "TrackingUnavailable", "TrialOutcome", "check_reachable"]


# ----------------------------------------------------------------------------- helpers


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _resumed_versions(saved: dict[str, str], tags: dict[str, str]) -> dict[str, str]:
    """Pops the version tags the parent run already has from ``tags`` (it keeps the versions
    it started under) and returns ``tgo.resumed_under`` naming the installed ones that
    differ, if any."""
    changed = []
    for name in [k for k in tags if k.startswith(schema.VERSION_PREFIX) and k in saved]:
        now = tags.pop(name)
        if now != saved[name]:
            changed.append(f"{name[len(schema.VERSION_PREFIX):]} {now} (was {saved[name]})")
    return {schema.RESUMED_UNDER: ", ".join(changed)} if changed else {}


def _spec_yaml(spec: Mapping[str, Any]) -> str:
    import yaml

    plain = json.loads(json.dumps(spec, default=lambda v: getattr(v, "value", str(v))))
    return yaml.safe_dump(plain, sort_keys=False)


# ----------------------------------------------------------------------------- the tracker


class SweepTracker(TrialLogging, FrontLogging):
    """MLflow parent run of one sweep and the child runs of its trials.

    Args:
        tracking_uri: explicit store URI (``sqlite:///path/mlflow.db``, ``http://host:5000``);
            never left to MLflow's default, which an old ``./mlruns`` folder would turn into
            the deprecated file store.
        experiment: MLflow experiment name (created when missing).
        sweep_name, spec_hash: identify the sweep; a not-finished parent run with the same
            pair is reused by :meth:`start`, so a resumed sweep keeps its parent.
        spec_dict: the sweep spec, logged as flat params and as ``spec.yaml``.
        git_commit: tag ``tgo.git_commit``; ``None`` asks ``git rev-parse HEAD``.
        objectives: :class:`tune.pareto.Objective` (or ``(name, direction)`` pairs).
        parent_run_id: reuse this parent run (it must be a sweep run of the same spec hash).
        artifact_location: artifact root of the experiment when this tracker creates it.
        probe_timeout_s: timeout of the reachability probe in :meth:`start`.
        model_code_paths, model_pip_requirements: see :mod:`tune.tracking.front_models`.

    Example:
        >>> tracker = SweepTracker("sqlite:///runs/mlflow.db", "tgo", "quick", "ab12", {},
        ...                        objectives=[("robust_acc", "max"), ("spike_rate", "min")])
        >>> tracker.start()   # doctest: +SKIP
        '6f1c0d...'
    """

    def __init__(self, tracking_uri: str, experiment: str, sweep_name: str, spec_hash: str,
                 spec_dict: Mapping[str, Any], git_commit: str | None = None,
                 objectives: Sequence[Any] = (), parent_run_id: str | None = None, *,
                 artifact_location: str | None = None, probe_timeout_s: float = 5.0,
                 model_code_paths: Sequence[str | os.PathLike] | None = None,
                 model_pip_requirements: Sequence[str] | None = None) -> None:
        if not isinstance(tracking_uri, str) or not tracking_uri:
            raise ValueError(f"tracking_uri: expected a non-empty URI, got {tracking_uri!r}")
        if not isinstance(spec_dict, Mapping):
            raise ValueError(f"spec_dict: expected a mapping, got {type(spec_dict).__name__}")
        self.tracking_uri = tracking_uri
        self.experiment = checked_text(experiment, "experiment")
        self.sweep_name = checked_text(sweep_name, "sweep_name")
        self.spec_hash = checked_text(spec_hash, "spec_hash")
        self.spec_dict = dict(spec_dict)
        self.git_commit = git_commit
        self.objectives: tuple[Objective, ...] = as_objectives(objectives, "objectives")
        self.artifact_location = artifact_location
        self.probe_timeout_s = probe_timeout_s
        self.model_code_paths = model_code_paths
        self.model_pip_requirements = model_pip_requirements
        self._parent = None if parent_run_id is None else checked_text(parent_run_id,
                                                                         "parent_run_id")
        self._client: Any = None
        self._experiment_id: str | None = None
        self._children: dict[str, str] = {}        # trial id -> child run id
        self._earlier: dict[str, Any] | None = None  # trial id -> child run read at start
        self._params: dict[str, set[str]] = {}     # run id -> param keys already logged
        self._front_tags: dict[str, tuple[str, str]] = {}  # run id -> (pareto, pareto_rank)
        #: run id -> metric key -> highest step the run holds; a step at or below it is
        #: never logged again (a trial rerun from an older checkpoint repeats epochs).
        self._steps: dict[str, dict[str, int]] = {}
        #: Trial ids whose child run had ended (finished, pruned, stopped) before this
        #: tracker opened it; their ops are not logged again (tune.tracking.ops.replay).
        self.finished_before: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the client and caches (Ray pickles callbacks into tuner.pkl);
        :meth:`start` after unpickling reconnects to the same parent run."""
        state = self.__dict__.copy()
        state.update(_client=None, _children={}, _params={}, _front_tags={}, _steps={},
                     finished_before=set(), _earlier=None)
        return state

    def use_parent(self, run_id: str) -> None:
        """Log under this existing parent run (checked by :meth:`start`); before start."""
        if self._client is not None:
            raise RuntimeError("SweepTracker: use_parent() after start()")
        self._parent = checked_text(run_id, "parent_run_id")

    # -- plumbing

    @property
    def parent_run_id(self) -> str | None:
        """The parent run id once :meth:`start` ran (or the one given)."""
        return self._parent

    @property
    def experiment_id(self) -> str | None:
        return self._experiment_id

    @property
    def client(self) -> Any:
        """The :class:`mlflow.MlflowClient` (after :meth:`start`)."""
        if self._client is None:
            raise RuntimeError("SweepTracker: call start() before logging")
        return self._client

    def guard(self, action: str) -> contextlib.AbstractContextManager[None]:
        """A block whose "store unreachable" failures raise :class:`TrackingUnavailable`
        naming this store and ``action``: wrap every MLflow call in one.

        Example:
            >>> with tracker.guard("read the parent run"):              # doctest: +SKIP
            ...     tracker.client.get_run(tracker.parent_run_id)
        """
        return guarded(self.tracking_uri, action)

    def _search(self, filter_string: str) -> list[Any]:
        return reader.search_runs(self.client, [self._experiment_id], filter_string)

    def _log_batch(self, run_id: str, metrics: Sequence[Any] = (), params: Sequence[Any] = (),
                   tags: Sequence[Any] = ()) -> None:
        """``log_batch`` split at MLflow's per-request limits."""
        for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=list(metrics[i:i + MAX_METRICS_PER_BATCH]))
        for items, kind in ((params, "params"), (tags, "tags")):
            for i in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
                chunk = list(items[i:i + MAX_PARAMS_TAGS_PER_BATCH])
                self.client.log_batch(run_id, **{kind: chunk})

    # -- parent run

    def start(self) -> str:
        """Create or reuse the parent run; log tags, spec params and ``spec.yaml``.

        Idempotent. Returns the parent run id.

        Raises:
            TrackingUnavailable: the store cannot be reached.
            ValueError: ``parent_run_id`` is not a sweep run of this spec hash.
        """
        if self._client is not None:
            return self._parent
        check_reachable(self.tracking_uri, self.probe_timeout_s)
        from mlflow import MlflowClient
        from mlflow.entities import Param, RunTag

        tags = {schema.KIND: schema.KIND_SWEEP, schema.SWEEP_NAME: self.sweep_name,
                schema.SPEC_HASH: self.spec_hash, **schema.objective_tags(self.objectives)}
        tags.update(versions.tags())
        commit = self.git_commit or _git_commit()
        if commit:
            tags[schema.GIT_COMMIT] = commit
        params = {key(k): text(v, MAX_PARAM_VALUE) for k, v in flatten(self.spec_dict).items()}
        with self.guard("start the parent run"), self._undo_start_on_error():
            client = MlflowClient(self.tracking_uri)
            self._client = client
            run = self._parent_run(client, tags)
            self._parent = run.info.run_id
            if schema.GIT_COMMIT in run.data.tags:  # a resumed sweep keeps its first commit
                tags.pop(schema.GIT_COMMIT, None)
            tags.update(_resumed_versions(run.data.tags, tags))
            self._log_batch(self._parent,
                            params=[Param(k, v) for k, v in params.items()
                                    if k not in run.data.params],
                            tags=[RunTag(k, v) for k, v in tags.items()])
            client.log_text(self._parent, _spec_yaml(self.spec_dict), schema.SPEC_ARTIFACT)
        return self._parent

    @contextlib.contextmanager
    def _undo_start_on_error(self) -> Iterator[None]:
        parent = self._parent
        try:
            yield
        except BaseException:
            self._client, self._parent = None, parent
            raise

    def _parent_run(self, client: Any, tags: dict[str, str]) -> Any:
        if self._parent is not None:
            from mlflow.exceptions import MlflowException

            try:
                run = client.get_run(self._parent)
            except MlflowException as exc:
                if is_unavailable(exc):
                    raise
                raise ValueError(f"parent_run_id: expected a run in {self.tracking_uri}, got "
                                 f"{self._parent!r} ({exc})") from None
            tags = run.data.tags
            if tags.get(schema.KIND) != schema.KIND_SWEEP \
                    or tags.get(schema.SPEC_HASH) != self.spec_hash:
                raise ValueError(
                    f"parent_run_id: expected a sweep run with spec hash {self.spec_hash!r}, got "
                    f"run {self._parent!r} tagged kind={tags.get(schema.KIND)!r} "
                    f"spec_hash={tags.get(schema.SPEC_HASH)!r}")
            self._experiment_id = run.info.experiment_id
        else:
            self._experiment_id = self._get_experiment(client)
            same = self._search(schema.sweeps_filter(self.sweep_name, self.spec_hash,
                                                     unfinished=True))
            if not same:
                return client.create_run(self._experiment_id, run_name=self.sweep_name, tags=tags)
            run = same[-1]  # the latest one
        if run.info.status != "RUNNING":
            client.update_run(run.info.run_id, status="RUNNING")
        return run

    def _get_experiment(self, client: Any) -> str:
        from mlflow.exceptions import MlflowException

        exp = client.get_experiment_by_name(self.experiment)
        kind = {schema.EXPERIMENT_KIND: schema.EXPERIMENT_KIND_MODELS}
        if exp is None:
            try:
                return client.create_experiment(self.experiment,
                                                artifact_location=self.artifact_location,
                                                tags=kind)
            except MlflowException as exc:  # created meanwhile by another process
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                exp = client.get_experiment_by_name(self.experiment)
        if exp.lifecycle_stage != "active":
            raise ValueError(f"experiment: expected an active experiment, got {self.experiment!r}"
                             f" which is deleted in {self.tracking_uri}; restore it or rename")
        if schema.EXPERIMENT_KIND not in exp.tags:   # made before; a kind set by hand stays
            client.set_experiment_tag(exp.experiment_id, schema.EXPERIMENT_KIND,
                                      schema.EXPERIMENT_KIND_MODELS)
        return exp.experiment_id

    def url(self) -> str | None:
        """UI address of the parent run when the tracking URI is http(s), else None."""
        if self._parent is None or self._experiment_id is None:
            return None
        if urllib.parse.urlparse(self.tracking_uri).scheme not in ("http", "https"):
            return None
        base = self.tracking_uri.rstrip("/")
        return f"{base}/#/experiments/{self._experiment_id}/runs/{self._parent}"

    def finish(self, status: str = "FINISHED") -> None:
        """End the parent run (``FINISHED``; ``KILLED`` or ``FAILED`` leave it resumable)."""
        if status not in ("FINISHED", "KILLED", "FAILED"):
            raise ValueError(f"status: expected 'FINISHED', 'KILLED' or 'FAILED', got {status!r}")
        with self.guard("end the parent run"):
            self.client.set_terminated(self._parent, status=status)

    def _require_parent(self) -> str:
        if self._parent is None or self._client is None:
            raise RuntimeError("SweepTracker: call start() before logging trials")
        return self._parent
