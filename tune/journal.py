"""What MLflow could not take, kept beside Ray's results until it can.

When the tracking server is unreachable mid-sweep, training goes on and every MLflow write
of a trial is appended, as one JSON line (an *op*), to ``mlflow_pending.jsonl`` in the
trial's Ray folder (``<storage_path>/<sweep>/<trial dir>/``). Sweep-level writes (closing the
parent run) go to the same file name in the sweep's folder. The sweep's parent run id is in
``<sweep>/mlflow_sweep.json``. Replaying the ops (:func:`tune.mlflow_ops.replay`, in
order) logs exactly what was missed; every op is idempotent (see
:meth:`tune.tracking.SweepTracker.log_epoch`), so a replay cut short can simply run again.
After a replay the lines move to ``mlflow_synced.jsonl`` (an audit trail).

Ops (``{"op": ..., "trial_id": ...}`` plus):

* ``open``: ``config``: the trial's child run, created or found by its trial id;
* ``result``: ``result``: one per-epoch result (params, node tag, metrics at its epoch);
* ``recover``: ``error``, ``retries``: the trial failed and Ray retries it;
* ``finish``: ``final``, ``outcome``, ``reason``, ``checkpoint``, ``timestamp_ms``;
* ``finish_sweep`` (sweep folder): ``status`` of the parent run.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> append(folder, {"op": "open", "trial_id": "a_00000", "config": {"margin": 0.5}})
    >>> [op["op"] for op in read(folder)]
    ['open']
    >>> mark_synced(folder, 1); read(folder)
    []
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

__all__ = ["PENDING_FILE", "SWEEP_FILE", "SYNCED_FILE", "append", "jsonable", "mark_synced",
           "pending_folders", "read", "read_sweep_info", "revived", "write_sweep_info"]

PENDING_FILE = "mlflow_pending.jsonl"
SYNCED_FILE = "mlflow_synced.jsonl"
SWEEP_FILE = "mlflow_sweep.json"


def jsonable(value: Any) -> Any:
    """JSON-able copy: numpy scalars to numbers, tuples to lists, the rest as text."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # 'nan', 'inf': kept as text
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def revived(value: Any) -> Any:
    """Inverse of :func:`jsonable` for the non-finite floats it writes as text."""
    if isinstance(value, dict):
        return {k: revived(v) for k, v in value.items()}
    if isinstance(value, list):
        return [revived(v) for v in value]
    if value in ("nan", "inf", "-inf"):
        return float(value)
    return value


def append(folder: str | os.PathLike, op: Mapping[str, Any]) -> None:
    """Append ``op`` to ``folder``'s pending file (one line, flushed and fsynced)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    line = json.dumps(jsonable(dict(op)), sort_keys=True) + "\n"
    path = folder / PENDING_FILE
    with open(path, "a+b") as out:
        if out.tell() > 0:   # a line torn by a crash must not swallow this one
            out.seek(-1, os.SEEK_END)
            if out.read(1) != b"\n":
                line = "\n" + line
        out.write(line.encode("utf-8"))
        out.flush()
        os.fsync(out.fileno())


def read(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """The pending ops of ``folder`` in the order they were appended.

    A last line cut short (the driver died while writing it) is skipped.
    """
    path = Path(folder) / PENDING_FILE
    if not path.is_file():
        return []
    ops = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            ops.append(revived(json.loads(line)))
        except ValueError:
            continue
    return ops


def mark_synced(folder: str | os.PathLike, count: int) -> None:
    """Move the first ``count`` pending ops of ``folder`` to the synced file."""
    folder = Path(folder)
    path = folder / PENDING_FILE
    if not path.is_file():
        return
    lines = [line for line in path.read_text(encoding="utf-8").splitlines()
             if _parses(line)]   # a torn line was never replayable: dropped
    with open(folder / SYNCED_FILE, "a", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in lines[:count])
    rest = lines[count:]
    if rest:
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in rest), encoding="utf-8")
        os.replace(tmp, path)
    else:
        path.unlink()


def _parses(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def pending_folders(experiment_path: str | os.PathLike) -> Iterator[Path]:
    """Trial folders of a sweep that hold pending ops (the sweep folder itself excluded)."""
    for path in sorted(Path(experiment_path).glob(f"*/{PENDING_FILE}")):
        yield path.parent


def write_sweep_info(experiment_path: str | os.PathLike, info: Mapping[str, Any]) -> None:
    """Record the sweep's MLflow coordinates (tracking URI, experiment, parent run id)."""
    folder = Path(experiment_path)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (SWEEP_FILE + ".tmp")
    tmp.write_text(json.dumps(jsonable(dict(info)), indent=1, sort_keys=True))
    os.replace(tmp, folder / SWEEP_FILE)


def read_sweep_info(experiment_path: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(experiment_path) / SWEEP_FILE
    return json.loads(path.read_text()) if path.is_file() else None
