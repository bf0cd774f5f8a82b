"""The Ray Jobs client of ``tgo submit`` and ``tgo jobs``: the dashboard address, the
cluster's token and :class:`JobsClient`, with clear errors.

Token authentication (Ray 2.60 turns it on at the head by default): the dashboard tells
whether it wants a token (``/api/authentication_mode``); the token comes from
``--token-file``, else ``$RAY_AUTH_TOKEN``, else the file ``$RAY_AUTH_TOKEN_PATH``, else
``~/.ray/auth_token`` (Ray's own order), and goes in the ``Authorization: Bearer`` header.
A cluster without authentication gets no token. A missing or rejected token raises
:class:`JobAuthError` naming the sources it looked at.

Example:
    >>> JobsClient("http://head:8265").wait("tgo-digits-quick-1a2b3c4d")   # doctest: +SKIP
    'SUCCEEDED'
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Mapping

from tgo.errors import TgoError

__all__ = ["DEFAULT_ADDRESS", "JobAuthError", "JobError", "JobsClient", "RayToken",
           "default_address", "resolve_token"]

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
_DEFAULT_TOKEN_FILE = Path("~/.ray/auth_token")
_TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class JobError(TgoError, ValueError):
    """A Ray Job request that cannot be done as asked (address, job id, cluster answer)."""


class JobAuthError(JobError):
    """The cluster wants a token that is missing here, or rejected the one sent."""




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


