"""What MLflow could not take, kept beside Ray's results until it can.

When the tracking server is unreachable mid-sweep, training goes on and every MLflow write
of a trial is appended, as one JSON line (an *op*), to ``mlflow_pending.jsonl`` in the
trial's Ray folder (``<storage_path>/<sweep>/<trial dir>/``). Sweep-level writes (closing the
parent run) go to the same file name in the sweep's folder. The sweep's parent run id is in
``<sweep>/mlflow_sweep.json``. Replaying the ops (:func:`tune.tracking.ops.replay`, in
order) logs exactly what was missed; every op is idempotent (see
:meth:`tune.tracking.SweepTracker.log_epoch`), so a replay cut short can simply run again.
After a replay the lines move to ``mlflow_synced.jsonl`` (an audit trail).

A line that is no op (the driver died while appending it, or the file was damaged) is
skipped with a warning naming the file and the line number, never fatal: the ops around it
are still replayed, in order, and the line itself moves to ``mlflow_damaged.jsonl`` when
the ops before it are synced, so nothing written is lost. (Failing instead would let one
torn line, which :func:`append` leaves mid-file after a crash, block a sweep's resume and
every later sync.)

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
import logging
import math
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

__all__ = ["DAMAGED_FILE", "PENDING_FILE", "SWEEP_FILE", "SYNCED_FILE", "append", "jsonable",
           "mark_synced", "pending_folders", "read", "read_sweep_info", "revived",
           "write_sweep_info"]

PENDING_FILE = "mlflow_pending.jsonl"
SYNCED_FILE = "mlflow_synced.jsonl"
SWEEP_FILE = "mlflow_sweep.json"
DAMAGED_FILE = "mlflow_damaged.jsonl"

_log = logging.getLogger(__name__)


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

    A line that is no op (cut short when the driver died while writing it, or damaged:
    not JSON, not UTF-8, not an object with an ``op``) is skipped with a warning naming the
    file and the line; the ops before and after it are returned. :func:`mark_synced` moves
    such lines to ``mlflow_damaged.jsonl``: nothing written is ever thrown away.
    """
    path = Path(folder) / PENDING_FILE
    ops = []
    for number, op, problem in _scan(_lines(path)):
        if op is not None:
            ops.append(op)
        elif problem:
            _log.warning("journal: skipped line %d of %s: expected one JSON object with an "
                         "'op' per line, got %s; the other lines are replayed, this one is "
                         "kept (in %s once the rest is synced)", number, path, problem,
                         DAMAGED_FILE)
    return ops


def mark_synced(folder: str | os.PathLike, count: int) -> None:
    """Move the first ``count`` pending ops of ``folder`` to the synced file, and the
    unreadable lines among them to the damaged file."""
    folder = Path(folder)
    path = folder / PENDING_FILE
    if not path.is_file():
        return
    lines = _lines(path)
    synced, damaged, rest = [], [], []
    done = 0
    for line, (_, op, problem) in zip(lines, _scan(lines)):
        if done >= count:
            rest.append(line)
        elif op is not None:
            synced.append(line)
            done += 1
        elif problem:
            damaged.append(line)
    for name, kept in ((SYNCED_FILE, synced), (DAMAGED_FILE, damaged)):
        if kept:
            with open(folder / name, "ab") as out:
                out.writelines(line + b"\n" for line in kept)
                out.flush()
                os.fsync(out.fileno())
    if any(line.strip() for line in rest):
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(line + b"\n" for line in rest))
        os.replace(tmp, path)
    else:
        path.unlink()


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.is_file() else []


def _scan(lines: list[bytes]) -> list[tuple[int, dict[str, Any] | None, str]]:
    """Per line: (its number, the op or None, what is wrong or "" for a blank line)."""
    out: list[tuple[int, dict[str, Any] | None, str]] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            out.append((number, None, ""))
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            out.append((number, None, "bytes that are not UTF-8"))
            continue
        except ValueError as exc:
            out.append((number, None, f"invalid JSON ({exc}; a line cut short by a crash "
                                      "mid-write, or damaged)"))
            continue
        if not isinstance(value, dict) or not isinstance(value.get("op"), str):
            out.append((number, None, f"a JSON {type(value).__name__} without an 'op'"))
            continue
        out.append((number, revived(value), ""))
    return out


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
    """The sweep's MLflow coordinates, or None when it never reached MLflow.

    Raises:
        ValueError: the file is not the JSON object :func:`write_sweep_info` writes.
    """
    path = Path(experiment_path) / SWEEP_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_bytes().decode("utf-8"))
    except ValueError as exc:   # UnicodeDecodeError and JSONDecodeError
        raise ValueError(f"{SWEEP_FILE}: expected the JSON object the sweep wrote (tracking "
                         f"URI, experiment, parent run id), got {path} ({exc})") from None
    if not isinstance(info, dict):
        raise ValueError(f"{SWEEP_FILE}: expected a JSON object (tracking URI, experiment, "
                         f"parent run id), got a {type(info).__name__} in {path}")
    return info
