"""Run sweeps on a Ray cluster as Ray Jobs: ``tgo submit`` and ``tgo jobs``.

A submitted sweep is ``python -m tune.cli sweep run <spec>`` (what ``tgo sweep run`` runs)
started by the cluster's job server through :class:`ray.job_submission.JobSubmissionClient`.
The job's ``runtime_env`` ships the project: ``working_dir`` is the repository root minus
:data:`EXCLUDES` (git history, virtualenvs, data sets, run outputs, MLflow stores,
checkpoints), and Ray puts it first on every worker's ``PYTHONPATH``. The requirements are
*not* installed per job: the cluster's Python must already have them (torch, spikingjelly,
ray, optuna, mlflow, ... at the versions of ``requirements.lock``, as the image of
``cluster/kuberay/Dockerfile`` has them); ``pip=True`` (``tgo submit --pip``) asks Ray to
install the lock into a per-job virtualenv instead, which takes minutes and needs the
package index. The entrypoint's ``python`` is the first
one on the ``PATH`` of the head node's Ray processes (``--python`` names another).

Results must outlive the job, so the MLflow store has to be one the cluster reaches: a
spec whose ``mlflow.tracking_uri`` is a local file store (the default
``sqlite:///<cwd>/mlflow.db``) is refused unless ``--tracking-uri`` names the store to use
(an ``http(s)://`` tracking server, see ``mlflow/``; a ``sqlite:`` path only works where
every node shares this machine's disk). The sweep's parent run is created here, before the
job starts, so its URL can be printed at once; the job logs under it
(``tgo sweep run --parent-run-id``).

Token authentication (Ray 2.60 turns it on at the head by default): the dashboard tells
whether it wants a token (``/api/authentication_mode``); the token comes from
``--token-file``, else ``$RAY_AUTH_TOKEN``, else the file ``$RAY_AUTH_TOKEN_PATH``, else
``~/.ray/auth_token`` (Ray's own order), and goes in the ``Authorization: Bearer`` header.
A cluster without authentication gets no token. A missing or rejected token raises
:class:`JobAuthError` naming the sources it looked at.

Example:
    >>> sweep = submit_sweep("examples/digits-quick.yaml", address="http://head:8265",
    ...                      tracking_uri="http://mlflow:5000")          # doctest: +SKIP
    >>> JobsClient("http://head:8265").wait(sweep.job_id).value          # doctest: +SKIP
    'SUCCEEDED'
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import shlex
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from tgo.errors import TgoError

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

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
#: What the job's working_dir leaves out (gitignore syntax, relative to the repository root).
EXCLUDES = (".git", ".venv", "data", "runs", "out", "mlruns", "mlartifacts", "mlflow.db",
            "*.pt", "__pycache__", "*.egg-info", ".pytest_cache", ".hypothesis",
            # secrets that sit in project folders
            ".env", "*.pem", "*.key", ".netrc", "auth_token")
#: Environment variable that carries the spec (YAML text) into the job.
SPEC_ENV = "TGO_SWEEP_SPEC"
_DEFAULT_TOKEN_FILE = Path("~/.ray/auth_token")
_TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class JobError(TgoError, ValueError):
    """A Ray Job request that cannot be done as asked (address, job id, cluster answer)."""


class JobAuthError(JobError):
    """The cluster wants a token that is missing here, or rejected the one sent."""


# ----------------------------------------------------------------------------- address, token


def default_address(environ: Mapping[str, str] | None = None) -> str:
    """``$RAY_ADDRESS`` when it is a dashboard URL, else :data:`DEFAULT_ADDRESS`."""
    env = os.environ if environ is None else environ
    value = env.get("RAY_ADDRESS", "")
    return value if value.startswith(("http://", "https://")) else DEFAULT_ADDRESS


def _check_address(address: str) -> str:
    parts = urllib.parse.urlparse(address or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JobError(f"address: expected the Ray dashboard URL http(s)://HOST:PORT (port "
                       f"8265 by default), got {address!r}")
    return address.rstrip("/")


@dataclasses.dataclass(frozen=True)
class RayToken:
    """A Ray authentication token and where it came from (the value never prints)."""

    value: str = dataclasses.field(repr=False)
    source: str

    @property
    def header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.value}"}


def _read_token(path: Path, what: str) -> str:
    try:
        text = path.expanduser().read_text().strip()
    except OSError as exc:
        raise JobAuthError(f"{what}: expected a readable file holding the Ray token, got "
                           f"{str(path)!r} ({exc.strerror or exc})") from None
    if not text:
        raise JobAuthError(f"{what}: expected a file holding the Ray token, got the empty "
                           f"file {str(path)!r}")
    return text


def resolve_token(token_file: str | os.PathLike | None = None,
                  environ: Mapping[str, str] | None = None) -> RayToken | None:
    """The token to send, in Ray's order of precedence; None when there is none.

    ``token_file`` (``--token-file``) first, then ``$RAY_AUTH_TOKEN`` (the token itself),
    ``$RAY_AUTH_TOKEN_PATH`` (a file) and ``~/.ray/auth_token``.

    Raises:
        JobAuthError: a named file is missing, unreadable or empty.

    Example:
        >>> resolve_token(environ={"RAY_AUTH_TOKEN": "abc"}).source
        '$RAY_AUTH_TOKEN'
    """
    env = os.environ if environ is None else environ
    if token_file is not None:
        return RayToken(_read_token(Path(token_file), "token_file"), f"--token-file {token_file}")
    if env.get("RAY_AUTH_TOKEN", "").strip():
        return RayToken(env["RAY_AUTH_TOKEN"].strip(), "$RAY_AUTH_TOKEN")
    if env.get("RAY_AUTH_TOKEN_PATH"):
        path = env["RAY_AUTH_TOKEN_PATH"]
        return RayToken(_read_token(Path(path), "RAY_AUTH_TOKEN_PATH"),
                        f"$RAY_AUTH_TOKEN_PATH ({path})")
    default = _DEFAULT_TOKEN_FILE.expanduser()
    if default.is_file():
        return RayToken(_read_token(default, str(_DEFAULT_TOKEN_FILE)), str(_DEFAULT_TOKEN_FILE))
    return None


def _missing_token(address: str) -> JobAuthError:
    return JobAuthError(
        f"the Ray cluster at {address} requires an authentication token (token "
        "authentication is on at its head) and none was found here: --token-file was not "
        f"given, RAY_AUTH_TOKEN and RAY_AUTH_TOKEN_PATH are unset and {_DEFAULT_TOKEN_FILE} "
        "does not exist. Pass --token-file PATH, or set RAY_AUTH_TOKEN to the token or "
        "RAY_AUTH_TOKEN_PATH to its file (`ray get-auth-token` on the head node prints it)")


def _rejected_token(address: str, token: RayToken | None) -> JobAuthError:
    where = f"the token from {token.source}" if token else "the token sent"
    return JobAuthError(
        f"the Ray cluster at {address} rejected {where}: it is not the head's token. "
        "Use the head node's token (`ray get-auth-token` there) through --token-file, "
        "RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH")


def _auth_mode(address: str, timeout_s: float) -> str | None:
    """``"token"`` or ``"disabled"`` from the dashboard's public route; None if it has none."""
    try:
        with urllib.request.urlopen(f"{address}/api/authentication_mode",
                                    timeout=timeout_s) as response:
            return str(json.loads(response.read().decode()).get("authentication_mode"))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # a Ray without token authentication
            return None
        raise JobError(f"address: the Ray dashboard at {address} answered HTTP {exc.code} "
                       f"{exc.reason} to GET /api/authentication_mode") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise JobError(f"address: no Ray dashboard answers at {address} ({reason}); is the "
                       "head running, and is this its dashboard port (8265 by default)?"
                       ) from None


# ----------------------------------------------------------------------------- jobs client


@contextlib.contextmanager
def _quiet_packaging() -> Iterator[None]:
    """Hide Ray's per-file packaging chatter (and its notes on .git/.venv, which
    :data:`EXCLUDES` leaves out anyway) while the working_dir is zipped and uploaded."""
    names = ("ray._private.runtime_env", "ray.dashboard.modules.dashboard_sdk")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class JobsClient:
    """:class:`ray.job_submission.JobSubmissionClient` with token handling and clear errors.

    Args:
        address: the dashboard URL (default :func:`default_address`).
        token_file: file holding the cluster's token (see :func:`resolve_token`).
        environ: where ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH`` are looked up.
        timeout_s: timeout of the reachability probe.

    Raises:
        JobError: nothing answers at ``address``.
        JobAuthError: the cluster wants a token that is missing, or rejects it.

    Example:
        >>> jobs = JobsClient("http://127.0.0.1:8265", token_file="/secrets/ray-token")
        ... # doctest: +SKIP
        >>> [j.submission_id for j in jobs.list()]   # doctest: +SKIP
        ['tgo-digits-quick-1a2b3c4d']
    """

    def __init__(self, address: str | None = None, *,
                 token_file: str | os.PathLike | None = None,
                 environ: Mapping[str, str] | None = None, timeout_s: float = 10.0) -> None:
        self.address = _check_address(address or default_address(environ))
        mode = _auth_mode(self.address, timeout_s)
        self.token: RayToken | None = None
        if mode != "disabled":  # never hand a token to a cluster that does not ask for one
            self.token = resolve_token(token_file, environ)
            if mode == "token" and self.token is None:
                raise _missing_token(self.address)
        self.auth_mode = mode
        from ray.job_submission import JobSubmissionClient

        with self._errors("connect"):
            self._client = JobSubmissionClient(
                self.address, headers=self.token.header if self.token else None)

    # -- errors

    @contextlib.contextmanager
    def _errors(self, action: str, job_id: str | None = None) -> Iterator[None]:
        """Ray's exceptions as JobError / JobAuthError with one line saying what failed."""
        import aiohttp
        import requests
        from ray.exceptions import AuthenticationError

        try:
            yield
        except AuthenticationError as exc:
            text = str(getattr(exc, "message", exc))
            if text.startswith("Authentication required") or self.token is None:
                raise _missing_token(self.address) from None
            raise _rejected_token(self.address, self.token) from None
        except (requests.exceptions.ConnectionError, ConnectionError,
                aiohttp.ClientError) as exc:
            raise JobError(f"address: lost the Ray dashboard at {self.address} while trying "
                           f"to {action} ({exc})") from None
        except RuntimeError as exc:
            text = str(exc)
            if job_id is not None and ("404" in text or "does not exist" in text):
                raise JobError(f"job: no job {job_id!r} on the Ray cluster at {self.address} "
                               "(`tgo jobs list` shows the jobs it knows)") from None
            raise JobError(f"could not {action} on the Ray cluster at {self.address}: "
                           f"{text}") from None

    # -- requests

    def dashboard_url(self, job_id: str) -> str:
        """The job's page on the Ray dashboard."""
        return f"{self.address}/#/jobs/{job_id}"

    def submit(self, entrypoint: str, runtime_env: Mapping[str, Any], *,
               submission_id: str | None = None,
               metadata: Mapping[str, str] | None = None) -> str:
        """Submit ``entrypoint``; returns the submission id (the job id to use everywhere)."""
        with self._errors("submit the job"), _quiet_packaging():
            return self._client.submit_job(entrypoint=entrypoint, runtime_env=dict(runtime_env),
                                           submission_id=submission_id,
                                           metadata=dict(metadata or {}))

    def list(self) -> list[Any]:
        """The submitted jobs (``JobDetails``), oldest first."""
        with self._errors("list jobs"):
            jobs = self._client.list_jobs()
        jobs = [j for j in jobs if j.submission_id]
        return sorted(jobs, key=lambda j: (j.start_time or 0, j.submission_id))

    def info(self, job_id: str) -> Any:
        """The job's ``JobDetails`` (status, message, times, metadata, entrypoint)."""
        with self._errors(f"get job {job_id}", job_id):
            return self._client.get_job_info(job_id)

    def status(self, job_id: str) -> str:
        """``PENDING``, ``RUNNING``, ``STOPPED``, ``SUCCEEDED`` or ``FAILED``."""
        with self._errors(f"get the status of job {job_id}", job_id):
            return str(self._client.get_job_status(job_id).value)

    def logs(self, job_id: str) -> str:
        """Everything the job's driver printed so far."""
        with self._errors(f"get the logs of job {job_id}", job_id):
            return self._client.get_job_logs(job_id)

    def follow(self, job_id: str) -> Iterator[str]:
        """The job's log, chunk by chunk, until the job ends (a websocket stream)."""
        self.info(job_id)  # a clear error for an unknown id before the stream opens
        loop = asyncio.new_event_loop()
        stream = self._client.tail_job_logs(job_id)
        try:
            while True:
                with self._errors(f"follow the logs of job {job_id}", job_id):
                    try:
                        chunk = loop.run_until_complete(stream.__anext__())
                    except StopAsyncIteration:
                        return
                yield chunk
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(stream.aclose())
            loop.close()

    def stop(self, job_id: str, *, wait_s: float = 30.0) -> str:
        """Ask the job to stop; wait up to ``wait_s`` for it to end. Returns its status."""
        with self._errors(f"stop job {job_id}", job_id):
            self._client.stop_job(job_id)
        return self.wait(job_id, timeout_s=wait_s)

    def wait(self, job_id: str, *, timeout_s: float | None = None, poll_s: float = 1.0) -> str:
        """Poll until the job ends (or ``timeout_s`` passes); returns its last status."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            status = self.status(job_id)
            if status in _TERMINAL or (deadline is not None and time.monotonic() >= deadline):
                return status
            time.sleep(poll_s)


# ----------------------------------------------------------------------------- runtime_env


def project_root() -> Path:
    """The repository root: the folder holding ``pyproject.toml`` and the ``tune`` package."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file() or not (root / "tgo").is_dir():
        raise FileNotFoundError(f"project root: expected pyproject.toml and tgo/ in {root} "
                                "(tgo submit ships a source checkout, not an installed wheel)")
    return root


LOCK_FILE = "requirements.lock"


def lock_requirements(root: Path) -> list[str]:
    """The pinned lines of ``root/requirements.lock`` (what the tests passed with), less
    Ray itself: a job runs on the cluster's Ray, which must be the lock's release (the
    KubeRay image installs the same lock), and Ray refuses to reinstall itself per job."""
    path = root / LOCK_FILE
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise FileNotFoundError(f"pip: expected the lock {path} in the shipped checkout "
                                f"({exc.strerror or exc})") from None
    pins = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return [p for p in pins if p.split("==")[0].split("[")[0].lower() != "ray"]


def project_runtime_env(root: str | os.PathLike | None = None, *,
                        env_vars: Mapping[str, str] | None = None, pip: bool = False,
                        excludes: Sequence[str] = EXCLUDES) -> dict[str, Any]:
    """The ``runtime_env`` that ships the project to a job and all its tasks.

    Args:
        root: the folder to ship (default :func:`project_root`).
        env_vars: environment of the driver and of every worker of the job.
        pip: install ``requirements.lock`` per job, Ray excepted (else the cluster's
            Python must already have it: the image of ``cluster/kuberay/Dockerfile``).

    Example:
        >>> env = project_runtime_env()
        >>> ".git" in env["excludes"], "pip" in env
        (True, False)
    """
    folder = Path(root).resolve() if root is not None else project_root()
    if not folder.is_dir():
        raise FileNotFoundError(f"root: expected a folder to ship, got {str(folder)!r}")
    env: dict[str, Any] = {"working_dir": str(folder), "excludes": list(excludes),
                           "env_vars": {"OMP_NUM_THREADS": "1",
                                        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
                                        **dict(env_vars or {})}}
    if pip:
        env["pip"] = lock_requirements(folder)
    return env


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
    metadata = {"tgo.sweep_name": spec.name, "tgo.experiment": spec.mlflow.experiment,
                "tgo.tracking_uri": uri, "tgo.parent_run_id": parent,
                "tgo.spec_hash": spec.hash()}
    if tracker.url():
        metadata["tgo.mlflow_url"] = tracker.url()
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
    uri, run_id = meta.get("tgo.tracking_uri"), meta.get("tgo.parent_run_id")
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
                     (job.metadata or {}).get("tgo.sweep_name", "-"), _when(job.start_time),
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
    if meta.get("tgo.sweep_name"):
        lines.append(f"sweep:      {meta['tgo.sweep_name']} (MLflow experiment "
                     f"{meta.get('tgo.experiment', '?')!r}, spec {meta.get('tgo.spec_hash', '?')})")
        lines.append("MLflow:     " + (meta.get("tgo.mlflow_url") or
                                       f"parent run {meta.get('tgo.parent_run_id')} at "
                                       f"{meta.get('tgo.tracking_uri')}"))
    lines += [f"dashboard:  {dashboard_url}",
              f"started:    {_when(info.start_time)}",
              f"ended:      {_when(info.end_time)}"]
    if info.start_time and info.end_time:
        lines.append(f"took:       {(info.end_time - info.start_time) / 1000:.1f} s")
    lines.append(f"entrypoint: {info.entrypoint}")
    return "\n".join(lines)
