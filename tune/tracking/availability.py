"""Whether the MLflow store can be reached, and the one error that says it cannot.

:func:`check_reachable` probes a store before a sweep starts; :func:`guarded` turns the
"store unreachable" failures of MLflow calls inside its block into
:class:`TrackingUnavailable`, which the journal layer catches to keep what it could not write.

Example:
    >>> with guarded("http://127.0.0.1:5000", "read the parent run"):   # doctest: +SKIP
    ...     client.get_run(run_id)
"""

from __future__ import annotations

import contextlib
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator

from tgo.errors import TgoError

__all__ = ["TrackingUnavailable", "check_reachable", "guarded", "is_unavailable"]


class TrackingUnavailable(TgoError, RuntimeError):
    """The MLflow store at ``uri`` could not be reached (server down, network, database)."""

    exit_code = 1

    def __init__(self, uri: str, action: str, detail: str) -> None:
        super().__init__(f"MLflow tracking store {uri} is unavailable ({action}): {detail}")
        self.uri = uri
        self.action = action


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


def is_unavailable(exc: BaseException) -> bool:
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


@contextlib.contextmanager
def guarded(tracking_uri: str, action: str) -> Iterator[None]:
    """Turn "store unreachable" failures inside the block into :class:`TrackingUnavailable`
    naming ``tracking_uri`` and ``action``; other errors pass unchanged."""
    try:
        yield
    except TrackingUnavailable:
        raise
    except Exception as exc:
        if is_unavailable(exc):
            raise TrackingUnavailable(tracking_uri, action,
                                      f"{type(exc).__name__}: {exc}") from exc
        raise
