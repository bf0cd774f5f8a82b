"""MLflow records of a sweep: one parent run per sweep, one nested child run per trial.

Everything goes through an explicit :class:`mlflow.MlflowClient` and explicit run ids,
never MLflow's fluent "active run", which is global state that Ray callbacks cannot share
safely. The parent holds the spec (flat params and ``spec.yaml``), the Pareto front
(``pareto.csv``, ``pareto.json``, ``pareto.png``, ``pareto.html``) and a ``hypervolume``
metric whose step is the number of finished trials. A child holds the trial's config
(params), its per-epoch metrics (step = epoch), its final objectives, the description of
the attack behind them (``eval_*`` tags), its outcome (tag ``status``) and, for front
members only, the trained model (see :mod:`tune.front_models`).

Every call that fails because the store cannot be reached raises
:class:`TrackingUnavailable`; all of them pass through ``SweepTracker._guard``, the one
place a buffering layer has to wrap.

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
import enum
import json
import math
import numbers
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from tgo.config import as_enum
from tune import versions
from tune.pareto import Objective, hypervolume, pareto_ranks

__all__ = ["ORPHAN_TAG", "SweepTracker", "TrackingUnavailable", "TrialOutcome", "check_reachable"]


# MLflow's limits (mlflow.utils.validation); copied so this module imports without mlflow.
_MAX_PARAM_VALUE = 6000
_MAX_TAG_VALUE = 8000
_MAX_KEY = 250
_MAX_PARAMS_TAGS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000

_PARENT_TAG = "mlflow.parentRunId"
_MODEL_LOGGED = "tgo.model_logged"
# Child-run name: trial id plus the knobs that tell TGO trials apart, in this order.
#: Tag of a child run that ended after Ray's last state snapshot of a driver that then died:
#: its record stands, but the resumed sweep (sampler, Ray's results, front) does not know it.
ORPHAN_TAG = "tgo.orphan"
_NAME_KEYS = (("margin_weight", "lam", "{:.2f}"), ("margin", "d", "{:.2f}"),
              ("noise_scale", "s", "{:.2f}"), ("timesteps", "T", "{}"))


class TrackingUnavailable(RuntimeError):
    """The MLflow store at ``uri`` could not be reached (server down, network, database)."""

    def __init__(self, uri: str, action: str, detail: str) -> None:
        super().__init__(f"MLflow tracking store {uri} is unavailable ({action}): {detail}")
        self.uri = uri
        self.action = action


class TrialOutcome(str, enum.Enum):
    """How a trial ended; sets the child's ``status`` tag and its MLflow run status."""

    FINISHED = "finished"
    PRUNED = "pruned"
    FAILED = "failed"
    STOPPED = "stopped"


_RUN_STATUS = {TrialOutcome.FINISHED: "FINISHED", TrialOutcome.PRUNED: "KILLED",
               TrialOutcome.FAILED: "FAILED", TrialOutcome.STOPPED: "KILLED"}


# ----------------------------------------------------------------------------- reachability


def check_reachable(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, before a sweep starts, when the tracking store cannot be used.

    ``http(s)``: GET ``<uri>/health`` (falling back to a one-result experiment search where
    a server has no health route) within ``timeout_s``. ``sqlite``: the database folder
    exists and is writable. Other schemes (``postgresql``, ``databricks``...) are not probed.

    Raises:
        TrackingUnavailable: naming the URI and what failed.
        ValueError: ``tracking_uri`` is empty or ``timeout_s`` is not positive.

    Example:
        >>> check_reachable("http://127.0.0.1:5000", timeout_s=2)   # doctest: +SKIP
    """
    if not isinstance(tracking_uri, str) or not tracking_uri:
        raise ValueError(f"tracking_uri: expected a non-empty URI, got {tracking_uri!r}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s: expected > 0 seconds, got {timeout_s!r}")
    scheme = urllib.parse.urlparse(tracking_uri).scheme
    if scheme in ("http", "https"):
        _probe_http(tracking_uri.rstrip("/"), timeout_s)
    elif scheme == "sqlite":
        _probe_sqlite(tracking_uri)


def _probe_http(base: str, timeout_s: float) -> None:
    search = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
    for url in (f"{base}/health", search):
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and url != search:
                continue
            raise TrackingUnavailable(base, f"GET {url}", f"HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingUnavailable(base, f"GET {url}", f"{reason}") from exc
    raise TrackingUnavailable(base, f"GET {base}/health", "no HTTP 200 answer")


def _probe_sqlite(uri: str) -> None:
    path = uri[len("sqlite:///"):].split("?")[0] if uri.startswith("sqlite:///") else ""
    if not path or path == ":memory:":
        return
    db = Path("/" + path.lstrip("/") if uri.startswith("sqlite:////") else path)
    target = db if db.exists() else db.parent
    if not target.exists():
        raise TrackingUnavailable(uri, "open database", f"folder {db.parent} does not exist")
    if not os.access(target, os.W_OK):
        raise TrackingUnavailable(uri, "open database", f"{target} is not writable")


def _is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the store could not be reached."""
    import requests
    import sqlalchemy.exc

    transient = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                 ConnectionError, TimeoutError, sqlalchemy.exc.OperationalError)
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, transient):
            return True
        text = str(exc)
        # mlflow.utils.rest_utils wraps every requests failure in a plain MlflowException.
        if ("failed with exception" in text or "failed with timeout exception" in text
                or "Max retries exceeded" in text
                or getattr(exc, "error_code", None) == "TEMPORARILY_UNAVAILABLE"):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# ----------------------------------------------------------------------------- small helpers


def _ended_for_good(run: Any) -> bool:
    """Whether a child run ended finished, pruned or stopped (not failed, not running)."""
    status = run.data.tags.get("status", "")
    return run.info.status in ("FINISHED", "KILLED") and \
        status.split(" ", 1)[0].rstrip(":") in ("finished", "pruned", "stopped")


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"space": {"margin": {"low": 0.1}}}`` -> ``{"space.margin.low": 0.1}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _key(name: str) -> str:
    """A metric/param/tag key MLflow accepts (bad characters -> ``_``, no empty path parts)."""
    clean = re.sub(r"[^/\w.\- ]", "_", str(name))
    parts = [p for p in clean.split("/") if p not in ("", ".", "..")]
    return "/".join(parts)[:_MAX_KEY] or "_"


def _text(value: Any, limit: int) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse(text: str) -> Any:
    """Inverse of :func:`_text` for the scalars and lists it writes."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def _run_name(trial_id: str, params: Mapping[str, Any]) -> str:
    parts = [f"trial_{trial_id}"]
    for key, short, fmt in _NAME_KEYS:
        value = params.get(key)
        if _number(value) is not None:
            parts.append(short + fmt.format(int(value) if fmt == "{}" else float(value)))
    return "_".join(parts)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _as_objectives(objectives: Sequence[Any], field: str) -> tuple[Objective, ...]:
    out = []
    for obj in objectives or ():
        if isinstance(obj, Objective):
            out.append(obj)
        elif isinstance(obj, Mapping):
            out.append(Objective(**obj))
        elif isinstance(obj, (tuple, list)) and len(obj) == 2:
            out.append(Objective(*obj))
        else:
            raise ValueError(f"{field}: expected Objective, (name, direction) or mapping, "
                             f"got {obj!r}")
    if not out:
        raise ValueError(f"{field}: expected at least one objective, got {objectives!r}")
    return tuple(out)


def _resumed_versions(saved: dict[str, str], tags: dict[str, str]) -> dict[str, str]:
    """Pops the version tags the parent run already has from ``tags`` (it keeps the versions
    it started under) and returns ``tgo.resumed_under`` naming the installed ones that
    differ, if any."""
    changed = []
    for key in [k for k in tags if k.startswith("tgo.version.") and k in saved]:
        now = tags.pop(key)
        if now != saved[key]:
            changed.append(f"{key[len('tgo.version.'):]} {now} (was {saved[key]})")
    return {"tgo.resumed_under": ", ".join(changed)} if changed else {}


def _spec_yaml(spec: Mapping[str, Any]) -> str:
    import yaml

    plain = json.loads(json.dumps(spec, default=lambda v: getattr(v, "value", str(v))))
    return yaml.safe_dump(plain, sort_keys=False)


def _require_text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field}: expected a non-empty string, got {value!r}")
    if "'" in value or "\\" in value:
        raise ValueError(f"{field}: expected no quotes or backslashes, got {value!r}")
    return value


# ----------------------------------------------------------------------------- the tracker


class SweepTracker:
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
        model_code_paths, model_pip_requirements: see :mod:`tune.front_models`.

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
        self.experiment = _require_text(experiment, "experiment")
        self.sweep_name = _require_text(sweep_name, "sweep_name")
        self.spec_hash = _require_text(spec_hash, "spec_hash")
        self.spec_dict = dict(spec_dict)
        self.git_commit = git_commit
        self.objectives = _as_objectives(objectives, "objectives")
        self.artifact_location = artifact_location
        self.probe_timeout_s = probe_timeout_s
        self.model_code_paths = model_code_paths
        self.model_pip_requirements = model_pip_requirements
        self._parent = None if parent_run_id is None else _require_text(parent_run_id,
                                                                         "parent_run_id")
        self._client: Any = None
        self._experiment_id: str | None = None
        self._children: dict[str, str] = {}        # trial id -> child run id
        self._params: dict[str, set[str]] = {}     # run id -> param keys already logged
        self._front_tags: dict[str, tuple[str, str]] = {}  # run id -> (pareto, pareto_rank)
        #: run id -> metric key -> highest step the run holds; a step at or below it is
        #: never logged again (a trial rerun from an older checkpoint repeats epochs).
        self._steps: dict[str, dict[str, int]] = {}
        #: Trial ids whose child run had ended (finished, pruned, stopped) before this
        #: tracker opened it; their ops are not logged again (tune.mlflow_ops.replay).
        self.finished_before: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the client and caches (Ray pickles callbacks into tuner.pkl);
        :meth:`start` after unpickling reconnects to the same parent run."""
        state = self.__dict__.copy()
        state.update(_client=None, _children={}, _params={}, _front_tags={}, _steps={},
                     finished_before=set())
        return state

    def use_parent(self, run_id: str) -> None:
        """Log under this existing parent run (checked by :meth:`start`); before start."""
        if self._client is not None:
            raise RuntimeError("SweepTracker: use_parent() after start()")
        self._parent = _require_text(run_id, "parent_run_id")

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

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn 'store unreachable' failures of MLflow calls into TrackingUnavailable."""
        try:
            yield
        except TrackingUnavailable:
            raise
        except Exception as exc:
            if _is_unavailable(exc):
                raise TrackingUnavailable(self.tracking_uri, action,
                                          f"{type(exc).__name__}: {exc}") from exc
            raise

    def _search(self, filter_string: str) -> list[Any]:
        runs, token = [], None
        while True:
            page = self.client.search_runs([self._experiment_id], filter_string,
                                           max_results=1000, page_token=token,
                                           order_by=["attributes.start_time ASC"])
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def _log_batch(self, run_id: str, metrics: Sequence[Any] = (), params: Sequence[Any] = (),
                   tags: Sequence[Any] = ()) -> None:
        """``log_batch`` split at MLflow's per-request limits."""
        for i in range(0, len(metrics), _MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=list(metrics[i:i + _MAX_METRICS_PER_BATCH]))
        for items, kind in ((params, "params"), (tags, "tags")):
            for i in range(0, len(items), _MAX_PARAMS_TAGS_PER_BATCH):
                chunk = list(items[i:i + _MAX_PARAMS_TAGS_PER_BATCH])
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

        tags = {"tgo.kind": "sweep", "tgo.sweep_name": self.sweep_name,
                "tgo.spec_hash": self.spec_hash,
                "tgo.objectives": ",".join(o.label for o in self.objectives)}
        tags.update(versions.tags())
        commit = self.git_commit or _git_commit()
        if commit:
            tags["tgo.git_commit"] = commit
        params = {_key(k): _text(v, _MAX_PARAM_VALUE) for k, v in _flatten(self.spec_dict).items()}
        with self._guard("start the parent run"), self._undo_start_on_error():
            client = MlflowClient(self.tracking_uri)
            self._client = client
            run = self._parent_run(client, tags)
            self._parent = run.info.run_id
            if "tgo.git_commit" in run.data.tags:  # a resumed sweep keeps its first commit
                tags.pop("tgo.git_commit", None)
            tags.update(_resumed_versions(run.data.tags, tags))
            self._log_batch(self._parent,
                            params=[Param(k, v) for k, v in params.items()
                                    if k not in run.data.params],
                            tags=[RunTag(k, v) for k, v in tags.items()])
            client.log_text(self._parent, _spec_yaml(self.spec_dict), "spec.yaml")
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
                if _is_unavailable(exc):
                    raise
                raise ValueError(f"parent_run_id: expected a run in {self.tracking_uri}, got "
                                 f"{self._parent!r} ({exc})") from None
            tags = run.data.tags
            if tags.get("tgo.kind") != "sweep" or tags.get("tgo.spec_hash") != self.spec_hash:
                raise ValueError(
                    f"parent_run_id: expected a sweep run with spec hash {self.spec_hash!r}, got "
                    f"run {self._parent!r} tagged kind={tags.get('tgo.kind')!r} "
                    f"spec_hash={tags.get('tgo.spec_hash')!r}")
            self._experiment_id = run.info.experiment_id
        else:
            self._experiment_id = self._get_experiment(client)
            same = [r for r in self._search("tags.`tgo.kind` = 'sweep' "
                                            "and attributes.status != 'FINISHED'")
                    if r.data.tags.get("tgo.sweep_name") == self.sweep_name
                    and r.data.tags.get("tgo.spec_hash") == self.spec_hash]
            if not same:
                return client.create_run(self._experiment_id, run_name=self.sweep_name, tags=tags)
            run = same[-1]  # the latest one
        if run.info.status != "RUNNING":
            client.update_run(run.info.run_id, status="RUNNING")
        return run

    def _get_experiment(self, client: Any) -> str:
        from mlflow.exceptions import MlflowException

        exp = client.get_experiment_by_name(self.experiment)
        if exp is None:
            try:
                return client.create_experiment(self.experiment,
                                                artifact_location=self.artifact_location)
            except MlflowException as exc:  # created meanwhile by another process
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                exp = client.get_experiment_by_name(self.experiment)
        if exp.lifecycle_stage != "active":
            raise ValueError(f"experiment: expected an active experiment, got {self.experiment!r}"
                             f" which is deleted in {self.tracking_uri}; restore it or rename")
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
        with self._guard("end the parent run"):
            self.client.set_terminated(self._parent, status=status)

    # -- child runs

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
        trial_id = _require_text(trial_id, "trial_id")
        if trial_id in self._children:
            return self._children[trial_id]
        with self._guard(f"open the child run of trial {trial_id}"):
            found = self._search(f"tags.{_PARENT_TAG} = '{parent}' "
                                 f"and tags.`tgo.trial_id` = '{trial_id}'")
            if found:
                run_id = found[0].info.run_id
                self._params[run_id] = set(found[0].data.params)
                if _ended_for_good(found[0]):
                    self.finished_before.add(trial_id)
                else:
                    self._steps[run_id] = {
                        key: max(m.step for m in self.client.get_metric_history(run_id, key))
                        for key in found[0].data.metrics}
                    if found[0].info.status != "RUNNING":
                        self.client.update_run(run_id, status="RUNNING")
                        self.client.set_tag(run_id, "status", "running")
            else:
                tags = {_PARENT_TAG: parent, "tgo.kind": "trial", "tgo.trial_id": trial_id,
                        "tgo.sweep_name": self.sweep_name, "tgo.spec_hash": self.spec_hash,
                        "status": "running"}
                run = self.client.create_run(self._experiment_id, tags=tags,
                                             run_name=_run_name(trial_id, _flatten(params)))
                run_id = run.info.run_id
                self._params[run_id] = set()
                self._steps[run_id] = {}
            self._children[trial_id] = run_id
        self.log_params(run_id, params)
        return run_id

    def children(self) -> dict[str, tuple[str, str]]:
        """Trial id -> (run id, MLflow run status) of every child run of this sweep."""
        parent = self._require_parent()
        with self._guard("read the sweep's trials"):
            runs = self._search(f"tags.{_PARENT_TAG} = '{parent}'")
        return {r.data.tags.get("tgo.trial_id", r.info.run_id): (r.info.run_id, r.info.status)
                for r in runs}

    def running_children(self) -> dict[str, str]:
        """Trial id -> run id of this sweep's child runs still marked RUNNING."""
        return {t: run for t, (run, status) in self.children().items() if status == "RUNNING"}

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set (or overwrite) string tags on a run."""
        from mlflow.entities import RunTag

        with self._guard(f"tag run {run_id}"):
            self._log_batch(run_id, tags=[RunTag(_key(k), str(v)) for k, v in tags.items()])

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log the (flattened) params whose keys the run does not have yet.

        MLflow params are write-once, so a key already logged keeps its first value.
        """
        from mlflow.entities import Param

        known = self._params.setdefault(run_id, set())
        new = {k: _text(v, _MAX_PARAM_VALUE) for k, v in
               ((_key(k), v) for k, v in _flatten(params).items()) if k not in known}
        if not new:
            return
        with self._guard(f"log params of run {run_id}"):
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
        items = [Metric(_key(k), v, stamp, int(epoch)) for k, v in
                 ((k, _number(v)) for k, v in _flatten(metrics).items()) if v is not None]
        self._log_new_points(run_id, items, f"log epoch {epoch} of run {run_id}")

    def _log_new_points(self, run_id: str, items: Sequence[Any], action: str) -> None:
        """Log the metric points above each key's highest logged step, then remember them."""
        held = self._steps.setdefault(run_id, {})
        new = [m for m in items if m.step > held.get(m.key, -1)]
        if new:
            with self._guard(action):
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
        flat = _flatten(final)
        epoch = _number(flat.get("epoch"))
        step = int(epoch) if epoch is not None and math.isfinite(epoch) else 0
        stamp = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
        metrics = [Metric(_key(k), v, stamp, step) for k, v in
                   ((k, _number(v)) for k, v in flat.items()
                    if k != "epoch" and not k.startswith("eval_")) if v is not None]
        tags = {k: _text(v, _MAX_TAG_VALUE) for k, v in flat.items() if k.startswith("eval_")}
        tags["status"] = _text(label[outcome], _MAX_TAG_VALUE)
        if checkpoint_path:
            tags["tgo.checkpoint"] = str(checkpoint_path)
        self._log_new_points(run_id, metrics, f"finish run {run_id}")
        with self._guard(f"finish run {run_id}"):
            self._log_batch(run_id, tags=[RunTag(_key(k), v) for k, v in tags.items()])
            self.client.set_terminated(run_id, status=_RUN_STATUS[outcome])

    # -- the Pareto front

    def finished_records(self) -> list[dict[str, Any]]:
        """Records of this sweep's FINISHED children, read back from the store.

        Each has ``trial_id``, ``run_id``, ``params`` (values parsed back from text), one key
        per objective (None when missing), the ``eval_*`` tags, ``checkpoint`` and
        ``model_logged``. Reading the store, not memory, keeps a resumed sweep's front whole.
        """
        parent = self._require_parent()
        with self._guard("read the finished trials"):
            runs = self._search(f"tags.{_PARENT_TAG} = '{parent}' "
                                "and attributes.status = 'FINISHED'")
        records = []
        for run in runs:
            tags, metrics = run.data.tags, run.data.metrics
            if ORPHAN_TAG in tags:   # not in the sweep's results: not on its front
                continue
            record = {"trial_id": tags.get("tgo.trial_id", run.info.run_name),
                      "run_id": run.info.run_id,
                      "params": {k: _parse(v) for k, v in run.data.params.items()}}
            record.update({o.name: metrics.get(o.name) for o in self.objectives})
            record.update({k: _parse(v) for k, v in tags.items() if k.startswith("eval_")})
            record["checkpoint"] = tags.get("tgo.checkpoint")
            record["model_logged"] = tags.get(_MODEL_LOGGED) == "true"
            if "pareto" in tags:
                self._front_tags[run.info.run_id] = (tags["pareto"], tags.get("pareto_rank", ""))
            records.append(record)
        return records

    def update_front(self, records: Sequence[Mapping[str, Any]],
                     objectives: Sequence[Any] | None = None) -> list[Mapping[str, Any]]:
        """Rewrite the parent's front artifacts, hypervolume and the children's pareto tags.

        Args:
            records: FINISHED trials only, each with ``trial_id``, ``run_id``, ``params``,
                the objective values and optionally the ``eval_*`` attack description
                (as :meth:`finished_records` returns them).
            objectives: defaults to the tracker's.

        Returns:
            The records on the Pareto front (rank 0), in input order.

        Writes ``pareto.csv``, ``pareto.json``, ``pareto.png`` and ``pareto.html`` on the
        parent, metric ``hypervolume`` at step ``len(records)``, and on every child tags
        ``pareto`` (``true``/``false``) and ``pareto_rank`` (0 = front).
        """
        from mlflow.entities import Metric, RunTag

        from tune import front_models

        parent = self._require_parent()
        objs = self.objectives if objectives is None else _as_objectives(objectives,
                                                                          "objectives")
        for i, record in enumerate(records):
            if not {"trial_id", "run_id"} <= set(record):
                raise ValueError(f"records[{i}]: expected keys 'trial_id' and 'run_id', got "
                                 f"{sorted(record)}")
        ranks = pareto_ranks(records, objs)
        volume = hypervolume(records, objs)
        meta = {"sweep_name": self.sweep_name, "spec_hash": self.spec_hash,
                "parent_run_id": parent}
        with self._guard("update the Pareto front"):
            with tempfile.TemporaryDirectory() as folder:
                front_models.write_front_files(Path(folder), records, ranks, objs, volume, meta)
                self.client.log_artifacts(parent, folder)
            self._log_batch(parent, metrics=[Metric("hypervolume", volume,
                                                    int(time.time() * 1000), len(records))])
            for record, rank in zip(records, ranks):
                want = ("true" if rank == 0 else "false", str(rank))
                if self._front_tags.get(record["run_id"]) != want:
                    self._log_batch(record["run_id"], tags=[RunTag("pareto", want[0]),
                                                            RunTag("pareto_rank", want[1])])
                    self._front_tags[record["run_id"]] = want
        return [record for record, rank in zip(records, ranks) if rank == 0]

    def log_front_model(self, run_id: str, model: Any, config_dict: Mapping[str, Any],
                        checkpoint: str | os.PathLike | None = None) -> str:
        """Log a front member's model on its child run, once (tag ``tgo.model_logged``).

        The model is an MLflow PyTorch model named ``model`` (pickle serialization, explicit
        pip requirements, the ``tgo`` package as code), with ``config.json`` beside it and
        on the run. Load it with ``mlflow.pytorch.load_model(f"runs:/{run_id}/model")``.

        Returns:
            The model URI (``models:/<model id>``), also when it was logged before.
        """
        from mlflow.entities import RunTag

        from tune import front_models

        self._require_parent()
        with self._guard(f"log the model of run {run_id}"):
            run = self.client.get_run(run_id)
            if run.data.tags.get(_MODEL_LOGGED) == "true":
                return run.data.tags.get("tgo.model_uri", f"runs:/{run_id}/model")
            params = {_key(k): _text(v, _MAX_PARAM_VALUE)
                      for k, v in _flatten(config_dict).items()}
            uri = front_models.log_pytorch_model(
                self.client, run.info.experiment_id, run_id, model, dict(config_dict),
                params=params, code_paths=self.model_code_paths,
                pip_requirements=self.model_pip_requirements, checkpoint=checkpoint)
            self._log_batch(run_id, tags=[RunTag(_MODEL_LOGGED, "true"),
                                          RunTag("tgo.model_uri", uri)])
        return uri
