"""The package versions a sweep's saved state depends on, and whether a resume may go on.

A sweep saves state through five packages. ``tgo sweep run`` writes their versions to
``<storage_path>/<name>/sweep_versions.json`` (and as ``tgo.version.<package>`` tags on the
MLflow parent run); ``tgo sweep resume`` compares them with what is installed *before it
touches anything*:

========== ============================================================ ==================
package    what of the sweep it saved                                   other version
========== ============================================================ ==================
ray        ``tuner.pkl``, the experiment state and trial records:       refused
           Ray restores them only under the release that wrote them
tgo-sweep  the searcher and pruner formats, the trainable               refused
optuna     the search state, saved as plain trial records and rebuilt   resumes
           with the spec's sampler (``tune.search._study_records``)
torch      checkpoints: tensors and plain data (``weights_only=True``)  resumes
mlflow     nothing on disk: the tracking server or SQLite store keeps   resumes
           its own schema (MLflow migrates or refuses it itself)
========== ============================================================ ==================

Example:
    >>> sorted(installed())
    ['mlflow', 'optuna', 'ray', 'tgo-sweep', 'torch']
"""

from __future__ import annotations

import json
import logging
import os
from importlib import metadata
from pathlib import Path

from tgo.errors import TgoError

__all__ = ["MUST_MATCH", "PACKAGES", "TAG_PREFIX", "VERSIONS_FILE", "VersionMismatch",
           "check_resumable", "installed", "tags", "write"]

VERSIONS_FILE = "sweep_versions.json"
PACKAGES = ("ray", "optuna", "mlflow", "torch", "tgo-sweep")
#: Packages whose saved state only the same release can read: a resume under another one
#: is refused.
MUST_MATCH = ("ray", "tgo-sweep")
#: Prefix of the parent run's version tags (``tgo.version.<package>``).
TAG_PREFIX = "tgo.version."
_log = logging.getLogger(__name__)


class VersionMismatch(TgoError, ValueError):
    """A sweep was saved under versions that the installed packages cannot resume."""


def installed() -> dict[str, str]:
    """Installed version of each package of :data:`PACKAGES` (``"missing"`` if absent)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def tags() -> dict[str, str]:
    """``tgo.version.<package>`` tags of the installed versions, for the parent run."""
    return {TAG_PREFIX + name: version for name, version in installed().items()}


def write(experiment_path: str | os.PathLike) -> None:
    """Record the installed versions beside the sweep's Ray results."""
    path = Path(experiment_path) / VERSIONS_FILE
    path.write_text(json.dumps(installed(), indent=1, sort_keys=True) + "\n")


def _read(path: Path) -> dict[str, str]:
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VersionMismatch(f"{VERSIONS_FILE}: expected the JSON object of versions that "
                              f"`tgo sweep run` wrote, got an unreadable file {path} "
                              f"({type(exc).__name__}: {exc})") from None
    if not isinstance(saved, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in saved.items()):
        raise VersionMismatch(f"{VERSIONS_FILE}: expected an object of package -> version "
                              f"strings in {path}, got {str(saved)[:200]}")
    return saved


def _pip_line(saved: dict[str, str], names: list[str]) -> str:
    spec = {"ray": "ray[tune,default]"}
    pins = " ".join(f"'{spec.get(n, n)}=={saved[n]}'" for n in names if n != "tgo-sweep")
    lines = []
    if pins:
        lines.append(f".venv/bin/pip install {pins}")
    if "tgo-sweep" in names:
        lines.append(f"check out the tgo-sweep release {saved['tgo-sweep']} (git tag or the "
                     "commit in the parent run's tgo.git_commit tag) and run `make install`")
    return "; ".join(lines)


def check_resumable(experiment_path: str | os.PathLike) -> dict[str, tuple[str, str]]:
    """Compare the versions a sweep was saved under with the installed ones.

    Returns:
        package -> (saved, installed) for every package that differs but resumes (logged).

    Raises:
        VersionMismatch: a package of :data:`MUST_MATCH` differs; the message names both
            versions and the command that installs the saved ones.
    """
    path = Path(experiment_path) / VERSIONS_FILE
    if not path.is_file():
        _log.warning("%s has no %s (saved by an older tgo-sweep): the versions it was "
                     "saved under are unknown; resuming anyway", experiment_path,
                     VERSIONS_FILE)
        return {}
    saved, now = _read(path), installed()
    differ = {n: (saved[n], now[n]) for n in PACKAGES if n in saved and saved[n] != now[n]}
    refused = [n for n in MUST_MATCH if n in differ]
    if refused:
        what = ", ".join(f"{n} {differ[n][0]} (installed: {differ[n][1]})" for n in refused)
        raise VersionMismatch(
            f"cannot resume {experiment_path}: it was saved under {what}, and that state "
            f"reads back only under the same release; nothing was changed. Install the "
            f"saved versions: {_pip_line(saved, refused)}; or start a new sweep under "
            f"another name")
    for name, (was, now_) in differ.items():
        _log.info("resuming under %s %s (saved under %s): its saved state does not depend "
                  "on the %s release", name, now_, was, name)
    return differ
