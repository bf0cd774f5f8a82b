"""Where a user looks at a sweep in the MLflow UI: the command that serves it and the direct
addresses of its experiment, its parent run and its front plot.

For a tracking server (``http(s)://``) the UI is the server itself; for a local store
(``sqlite:///...``) it is ``mlflow ui`` on 127.0.0.1:5000, the command printed beside.

Every address carries ``?workflowType=machine_learning``: MLflow 3's UI (3.17 here) picks
its views from a browser-wide "workflow type", GenAI unless the address says otherwise,
and ignores the experiment's ``mlflow.experimentKind`` tag (which the tracker still sets,
for UIs that read it). Without it a fresh browser opens a sweep's experiment on an empty
traces overview instead of its runs.

Example:
    >>> run_url("http://127.0.0.1:5000", "1", "abc")
    'http://127.0.0.1:5000/#/experiments/1/runs/abc?workflowType=machine_learning'
    >>> run_url("http://127.0.0.1:5000", "1", "abc", artifact="pareto.html")
    'http://127.0.0.1:5000/#/experiments/1/runs/abc/artifacts/pareto.html?workflowType=machine_learning'
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["LOCAL_UI", "MODEL_TRAINING_VIEW", "experiment_url", "mlflow_ui_command", "run_url",
           "ui_base"]

#: Where ``mlflow ui`` serves a local store (the command :func:`mlflow_ui_command` prints).
LOCAL_UI = "http://127.0.0.1:5000"
#: The UI's model-training views (runs, metrics, artifacts) rather than the GenAI ones.
MODEL_TRAINING_VIEW = "?workflowType=machine_learning"


def _is_http(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def ui_base(tracking_uri: str) -> str:
    """The UI's address: the server, or ``mlflow ui``'s for a local store."""
    return tracking_uri.rstrip("/") if _is_http(tracking_uri) else LOCAL_UI


def _page(tracking_uri: str, path: str) -> str:
    return f"{ui_base(tracking_uri)}/#/{path}{MODEL_TRAINING_VIEW}"


def experiment_url(tracking_uri: str, experiment_id: str) -> str:
    """The experiment's runs table."""
    return _page(tracking_uri, f"experiments/{experiment_id}")


def run_url(tracking_uri: str, experiment_id: str, run_id: str,
            artifact: str | None = None) -> str:
    """A run's page, or one of its artifacts opened in the run's artifact viewer."""
    path = f"experiments/{experiment_id}/runs/{run_id}"
    return _page(tracking_uri, path if artifact is None else f"{path}/artifacts/{artifact}")


def mlflow_ui_command(tracking_uri: str) -> str | None:
    """The command that serves the UI of a local store; None for a tracking server."""
    if _is_http(tracking_uri):
        return None
    beside = Path(sys.executable).parent / "mlflow"   # the venv's mlflow, as `make` runs it
    exe = os.path.relpath(beside) if beside.exists() else "mlflow"
    return f"{exe} ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000"
