"""What a Ray Job ships: the project's source tree as its ``runtime_env``.

``working_dir`` is the repository root minus :data:`EXCLUDES` (git history, virtualenvs,
data sets, run outputs, MLflow stores, checkpoints, secrets), and Ray puts it first on
every worker's ``PYTHONPATH``. The requirements are *not* installed per job: the cluster's
Python must already have them (torch, spikingjelly, ray, optuna, mlflow, ... at the
versions of ``requirements.lock``, as the image of ``cluster/kuberay/Dockerfile`` has
them); ``pip=True`` (``tgo submit --pip``) asks Ray to install the lock into a per-job
virtualenv instead, which takes minutes and needs the package index.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["EXCLUDES", "LOCK_FILE", "lock_requirements", "project_root",
           "project_runtime_env"]

#: What the job's working_dir leaves out (gitignore syntax, relative to the repository root).
EXCLUDES = (".git", ".venv", "data", "runs", "out", "mlruns", "mlartifacts", "mlflow.db",
            "*.pt", "__pycache__", "*.egg-info", ".pytest_cache", ".hypothesis",
            # secrets that sit in project folders
            ".env", "*.pem", "*.key", ".netrc", "auth_token")
#: Environment variable that carries the spec (YAML text) into the job.


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


