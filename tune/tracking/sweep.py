"""The tracker of a sweep spec: where its records go, under which objectives.

Example:
    >>> from tune.spec import load_spec
    >>> spec = load_spec("examples/digits-quick.yaml")
    >>> [o.name for o in objectives_of(spec)]
    ['clean_acc', 'robust_acc']
"""

from __future__ import annotations

import os
from pathlib import Path

from tgo.config import TrainConfig
from tune.pareto import Objective
from tune.spec import SweepSpec
from tune.tracking.tracker import SweepTracker

__all__ = ["MLFLOW_HTTP_DEFAULTS", "artifact_location", "make_tracker", "objectives_of"]


def objectives_of(spec: SweepSpec) -> list[Objective]:
    """The spec's objectives with their hypervolume references: the defaults of
    :class:`~tune.pareto.Objective` (0 for a maximised accuracy, 1 for a minimised rate),
    and for ``sops`` the dense bound of the spec's model at its largest T (every neuron
    firing at every step, :func:`tgo.energy.dense_sops`), the worst a model can do."""
    out = []
    for name, direction in spec.objectives.items():
        reference = None
        if name == "sops":
            from tgo.energy import dense_sops
            reference = dense_sops(spec.model.value, spec.dataset.value, _largest_t(spec))
        out.append(Objective(name, direction.value, reference))
    return out


def _largest_t(spec: SweepSpec) -> int:
    dist = spec.space.get("timesteps")
    if dist is None:
        return int(spec.fixed_settings().get("timesteps", TrainConfig.timesteps))
    values = getattr(dist, "values", None)
    return int(max(values) if values is not None else dist.high)


def artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of a local SQLite store go beside the database (``mlartifacts/``), never
    into ``./mlruns``, whose mere presence switches MLflow's default to the old file store."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


#: MLflow's HTTP client retries a refused connection 7 times with exponential back-off
#: (minutes) by default; the sweep driver would stall on every write of an outage. These
#: defaults apply unless the user set the variables; the callback keeps what it could not
#: write and retries on its own schedule.
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
                       "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                       "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def make_tracker(spec: SweepSpec, parent_run_id: str | None = None):
    """The :class:`tune.tracking.SweepTracker` of ``spec`` (not started)."""
    for name, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    return SweepTracker(spec.mlflow.tracking_uri, spec.mlflow.experiment, spec.name,
                        spec.hash(), spec.model_dump(mode="json"),
                        objectives=objectives_of(spec), parent_run_id=parent_run_id,
                        artifact_location=artifact_location(spec.mlflow.tracking_uri))
