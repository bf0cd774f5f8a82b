"""Run sweeps on a Ray cluster as Ray Jobs: ``tgo submit`` and ``tgo jobs``.

A submitted sweep is ``python -m tune.cli sweep run <spec>`` (what ``tgo sweep run`` runs)
started by the cluster's job server through :class:`~tune.jobs_client.JobsClient` (address,
token and errors: :mod:`tune.jobs_client`). The job's ``runtime_env`` ships the project
(:mod:`tune.runtime_env`: the repository root minus :data:`EXCLUDES`; the cluster's Python
must already have the locked requirements unless ``pip=True``). The entrypoint's
``python`` is the first one on the ``PATH`` of the head node's Ray processes (``--python``
names another).

Results must outlive the job, so the MLflow store has to be one the cluster reaches: a
spec whose ``mlflow.tracking_uri`` is a local file store (the default
``sqlite:///<cwd>/mlflow.db``) is refused unless ``--tracking-uri`` names the store to use
(an ``http(s)://`` tracking server, see ``mlflow/``; a ``sqlite:`` path only works where
every node shares this machine's disk). The sweep's parent run is created here, before the
job starts, so its URL can be printed at once; the job logs under it
(``tgo sweep run --parent-run-id``).

Example:
    >>> sweep = submit_sweep("examples/digits-quick.yaml", address="http://head:8265",
    ...                      tracking_uri="http://mlflow:5000")          # doctest: +SKIP
    >>> JobsClient("http://head:8265").wait(sweep.job_id).value          # doctest: +SKIP
    'SUCCEEDED'
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, Mapping, Sequence

from tune.jobs_client import (DEFAULT_ADDRESS, JobAuthError, JobError, JobsClient, RayToken,
                              default_address, resolve_token)
from tune.runtime_env import (EXCLUDES, lock_requirements, project_root,
                              project_runtime_env)

__all__ = [
    "DEFAULT_ADDRESS",
    "EXCLUDES",
    "JobAuthError",
    "JobError",
    "JobsClient",
    "RayToken",
    "SPEC_ENV",
    "SubmittedSweep",
    "close_parent_run",
    "default_address",
    "describe_job",
    "format_jobs",
    "project_root",
    "project_runtime_env",
    "lock_requirements",
    "resolve_token",
    "submission_tracking_uri",
    "submit_sweep",
    "sweep_entrypoint",
]

#: Keys of a submitted sweep's Ray Job metadata (``tgo jobs`` reads them back).
META_SWEEP, META_EXPERIMENT, META_SPEC_HASH = "tgo.sweep_name", "tgo.experiment", "tgo.spec_hash"
META_TRACKING_URI, META_PARENT_RUN = "tgo.tracking_uri", "tgo.parent_run_id"
META_MLFLOW_URL = "tgo.mlflow_url"

#: Environment variable that carries the spec (YAML text) into the job.
SPEC_ENV = "TGO_SWEEP_SPEC"


# ----------------------------------------------------------------------------- sweeps


def _is_local_store(uri: str) -> bool:
    scheme = urllib.parse.urlparse(uri).scheme
    return scheme in ("", "file", "sqlite") or len(scheme) == 1  # "C:" paths count as local


def submission_tracking_uri(spec_uri: str, tracking_uri: str | None) -> str:
    """The MLflow store a submitted sweep logs to.

    ``tracking_uri`` (``--tracking-uri``) wins; without it the spec's must be a store the
    cluster can reach (not a local file or SQLite database).

    Raises:
        ValueError: the spec names a local store and no ``tracking_uri`` was given.

    Example:
        >>> submission_tracking_uri("http://mlflow:5000", None)
        'http://mlflow:5000'
    """
    if tracking_uri:
        return tracking_uri
    if _is_local_store(spec_uri):
        raise ValueError(
            f"mlflow.tracking_uri: expected an MLflow store the Ray cluster can reach (an "
            f"http(s):// tracking server), got {spec_uri!r}, a file on this machine that the "
            "job could not write to. Start a tracking server (mlflow/) and pass "
            "--tracking-uri http://HOST:5000, or set mlflow.tracking_uri in the spec; a "
            "sqlite:/// URI passed with --tracking-uri works only where all nodes share "
            "this machine's disk")
    return spec_uri


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlparse(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def sweep_entrypoint(spec_file: str, parent_run_id: str, python: str = "python") -> str:
    """The job's shell command: write the spec from :data:`SPEC_ENV`, run the sweep.

    Example:
        >>> for part in sweep_entrypoint(".s.yaml", "abc").split(" && "):
        ...     print(part)
        printenv TGO_SWEEP_SPEC > .s.yaml
        python -m tune.cli sweep run .s.yaml --address auto --parent-run-id abc
    """
    q = shlex.quote
    return (f"printenv {SPEC_ENV} > {q(spec_file)} && {python} -m tune.cli sweep run "
            f"{q(spec_file)} --address auto --parent-run-id {q(parent_run_id)}")


@dataclasses.dataclass(frozen=True)
class SubmittedSweep:
    """What :func:`submit_sweep` started and where to watch it."""

    job_id: str
    address: str
    dashboard_url: str
    sweep_name: str
    experiment: str
    tracking_uri: str
    parent_run_id: str
    mlflow_url: str | None
    storage_path: str
    entrypoint: str
    warnings: tuple[str, ...] = ()


def _job_spec(spec_path: Path, data: Mapping[str, Any], spec: Any, tracking_uri: str | None,
              storage_path: str | None, job_id: str) -> tuple[Any, dict[str, Any]]:
    """(validated spec, plain data to ship) with the job's tracking URI and storage path;
    ``data`` is the file as written, ``spec`` it validated and resolved here."""
    from tune.spec import SweepSpec

    uri = submission_tracking_uri(spec.mlflow.tracking_uri, tracking_uri)
    data = dict(data)
    data["mlflow"] = {**(data.get("mlflow") or {}), "tracking_uri": uri,
                      "experiment": spec.mlflow.experiment}
    if storage_path is None:
        given = str(data.get("storage_path", "runs"))
        # A relative folder lands in the job's working_dir copy; one folder per job keeps
        # a resubmitted spec from colliding with the Ray results of the last one.
        storage_path = given if "://" in given or Path(given).is_absolute() \
            else f"{given}/{job_id}"
    data["storage_path"] = storage_path
    return SweepSpec.from_dict(data, source=str(spec_path)), data


def submit_sweep(spec_path: str | os.PathLike, *, address: str | None = None,
                 tracking_uri: str | None = None, token_file: str | os.PathLike | None = None,
                 storage_path: str | None = None, pip: bool = False, python: str = "python",
                 root: str | os.PathLike | None = None,
                 environ: Mapping[str, str] | None = None) -> SubmittedSweep:
    """Validate ``spec_path`` here, create its MLflow parent run, submit it as a Ray Job.

    Args:
        spec_path: the sweep spec (YAML); it travels in the job's environment, so it may
            live anywhere.
        address, token_file, environ: see :class:`JobsClient`.
        tracking_uri: the MLflow store of the job (see :func:`submission_tracking_uri`).
        storage_path: Ray results on the cluster (default: the spec's; a relative one
            becomes ``<it>/<job id>`` inside the job's working dir on the head node). A
            multi-machine cluster needs a shared path or ``s3://...``.
        pip, root: see :func:`project_runtime_env`.
        python: the cluster's interpreter that runs the entrypoint.

    Raises:
        SpecError: the spec is invalid (nothing is submitted).
        ValueError: the tracking store is local and ``tracking_uri`` is missing.
        TrackingUnavailable: the tracking store does not answer.
        JobError, JobAuthError: see :class:`JobsClient`.
    """
    import yaml

    from tune.tracking import artifact_location, objectives_of
    from tune.spec import SweepSpec, read_yaml
    from tune.tracking import SweepTracker

    path = Path(spec_path)
    written = read_yaml(path)
    # every problem of the file, before anything starts; the default store is this machine's
    checked = SweepSpec.from_dict(written, str(path)).resolved()
    job_id = f"tgo-{checked.name}-{uuid.uuid4().hex[:8]}"
    spec, data = _job_spec(path, written, checked, tracking_uri, storage_path, job_id)
    uri = spec.mlflow.tracking_uri
    client = JobsClient(address, token_file=token_file, environ=environ)
    warnings = []
    if uri.startswith(("http://", "https://")) and _is_loopback(uri) \
            and not _is_loopback(client.address):
        warnings.append(f"the tracking URI {uri} is a loopback address: the cluster at "
                        f"{client.address} reaches it only if the job runs on this machine")
    spec_dict = spec.model_dump(mode="json")
    spec_dict.pop("storage_path", None)  # the job logs where it really writes
    tracker = SweepTracker(uri, spec.mlflow.experiment, spec.name, spec.hash(), spec_dict,
                           objectives=objectives_of(spec), artifact_location=artifact_location(uri))
    parent = tracker.start()
    spec_file = f".tgo-spec-{job_id}.yaml"
    entrypoint = sweep_entrypoint(spec_file, parent, python)
    env = project_runtime_env(root, pip=pip,
                              env_vars={SPEC_ENV: yaml.safe_dump(data, sort_keys=False)})
    metadata = {META_SWEEP: spec.name, META_EXPERIMENT: spec.mlflow.experiment,
                META_TRACKING_URI: uri, META_PARENT_RUN: parent,
                META_SPEC_HASH: spec.hash()}
    if tracker.url():
        metadata[META_MLFLOW_URL] = tracker.url()
    try:
        job = client.submit(entrypoint, env, submission_id=job_id, metadata=metadata)
    except BaseException:
        with contextlib.suppress(Exception):
            tracker.finish("FAILED")
        raise
    return SubmittedSweep(job, client.address, client.dashboard_url(job), spec.name,
                          spec.mlflow.experiment, uri, parent, tracker.url(),
                          str(data["storage_path"]), entrypoint, tuple(warnings))


def close_parent_run(info: Any, status: str) -> str | None:
    """End a job's MLflow parent run that the job left RUNNING (stopped or crashed job).

    ``info`` is the job's ``JobDetails``; its ``tgo.*`` metadata names the run. Returns the
    MLflow status set, or None when there was nothing to do. The run stays resumable
    (``KILLED`` or ``FAILED``, never ``FINISHED``).
    """
    meta = getattr(info, "metadata", None) or {}
    uri, run_id = meta.get(META_TRACKING_URI), meta.get(META_PARENT_RUN)
    if not uri or not run_id or status not in ("FAILED", "STOPPED"):
        return None
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    if client.get_run(run_id).info.status != "RUNNING":
        return None
    mark = "KILLED" if status == "STOPPED" else "FAILED"
    client.set_terminated(run_id, status=mark)
    return mark


# ----------------------------------------------------------------------------- text


def _when(ms: int | None) -> str:
    return "-" if not ms else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def format_jobs(jobs: Sequence[Any]) -> str:
    """Jobs as a table: id, status, sweep, start time, entrypoint (shortened)."""
    header = ["job id", "status", "sweep", "started", "entrypoint"]
    rows = []
    for job in jobs:
        entry = job.entrypoint if len(job.entrypoint) <= 60 else job.entrypoint[:57] + "..."
        rows.append([job.submission_id, str(job.status.value),
                     (job.metadata or {}).get(META_SWEEP, "-"), _when(job.start_time),
                     entry])
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines) if rows else "no jobs"


def describe_job(info: Any, dashboard_url: str) -> str:
    """Status lines of one job: status and message, sweep, MLflow run, times, entrypoint."""
    meta = info.metadata or {}
    lines = [f"job:        {info.submission_id}",
             f"status:     {info.status.value}" + (f" ({info.message})" if info.message else "")]
    if meta.get(META_SWEEP):
        lines.append(f"sweep:      {meta[META_SWEEP]} (MLflow experiment "
                     f"{meta.get(META_EXPERIMENT, '?')!r}, spec {meta.get(META_SPEC_HASH, '?')})")
        lines.append("MLflow:     " + (meta.get(META_MLFLOW_URL) or
                                       f"parent run {meta.get(META_PARENT_RUN)} at "
                                       f"{meta.get(META_TRACKING_URI)}"))
    lines += [f"dashboard:  {dashboard_url}",
              f"started:    {_when(info.start_time)}",
              f"ended:      {_when(info.end_time)}"]
    if info.start_time and info.end_time:
        lines.append(f"took:       {(info.end_time - info.start_time) / 1000:.1f} s")
    lines.append(f"entrypoint: {info.entrypoint}")
    return "\n".join(lines)
