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
    ...                        spec, objectives=[Objective("robust_acc", "max")])
    >>> parent = tracker.start()
    >>> child = tracker.child_run("3a1b_00000", {"margin_weight": 0.42, "timesteps": 4})
    >>> tracker.log_epoch(child, {"val_robust_acc": 0.31}, epoch=1)
    >>> tracker.finish_trial(child, {"robust_acc": 0.35, "eval_attack": "pgd"}, "finished")
    >>> front = tracker.update_front(tracker.finished_records())
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
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
from tune.pareto import Objective, hypervolume, pareto_ranks

__all__ = ["SweepTracker", "TrackingUnavailable", "TrialOutcome", "check_reachable"]

_log = logging.getLogger(__name__)

# MLflow's limits (mlflow.utils.validation); copied so this module imports without mlflow.
_MAX_PARAM_VALUE = 6000
_MAX_TAG_VALUE = 8000
_MAX_KEY = 250
_MAX_PARAMS_TAGS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000

_PARENT_TAG = "mlflow.parentRunId"
_MODEL_LOGGED = "tgo.model_logged"
# Child-run name: trial id plus the knobs that tell TGO trials apart, in this order.
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
    path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else ""
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


def _require_text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field}: expected a non-empty string, got {value!r}")
    if "'" in value or "\\" in value:
        raise ValueError(f"{field}: expected no quotes or backslashes, got {value!r}")
    return value
