"""Read a finished (or running) sweep back from MLflow: its parent run and Pareto front.

Example:
    >>> front, objectives, params = load_front("digits-quick")   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tune.spec import SweepSpec, load_spec

__all__ = ["find_parent_run", "load_front", "resolve_sweep"]


def resolve_sweep(sweep: str, tracking_uri: str | None = None, experiment: str | None = None
                  ) -> tuple[str, str, str, SweepSpec | None]:
    """(sweep name, tracking URI, experiment) from a name, a spec file or a results folder."""
    spec = None
    path = Path(sweep)
    if path.is_file():
        spec = load_spec(path)
    elif (path / "sweep_spec.yaml").is_file():
        spec = load_spec(path / "sweep_spec.yaml")
    name = spec.name if spec else sweep
    uri = tracking_uri or (spec.mlflow.tracking_uri if spec else None) \
        or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    exp = experiment or (spec.mlflow.experiment if spec else name)
    return name, uri, exp, spec


def find_parent_run(client: Any, experiment: str, sweep_name: str):
    """The newest parent run of sweep ``sweep_name`` in ``experiment``."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ValueError(f"experiment: no MLflow experiment named {experiment!r} at "
                         f"{client.tracking_uri}")
    runs = client.search_runs([exp.experiment_id],
                              filter_string=f"tags.`tgo.kind` = 'sweep' and "
                                            f"tags.`tgo.sweep_name` = '{sweep_name}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise ValueError(f"sweep: no sweep named {sweep_name!r} in experiment {experiment!r} "
                         f"at {client.tracking_uri}")
    return runs[0]


def load_front(sweep: str, *, tracking_uri: str | None = None, experiment: str | None = None
               ) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """The sweep's front members (rank 0), its objective names and searched param names."""
    from mlflow import MlflowClient

    name, uri, exp, spec = resolve_sweep(sweep, tracking_uri, experiment)
    client = MlflowClient(tracking_uri=uri)
    parent = find_parent_run(client, exp, name)
    params = parent.data.params
    objectives = [k.split(".", 1)[1] for k in sorted(params) if k.startswith("objectives.")] \
        if spec is None else list(spec.objective_names)
    searched = sorted({k.split(".")[1] for k in params if k.startswith("space.")}) \
        if spec is None else list(spec.space)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' "
                      "and tags.pareto = 'true'")
    front = []
    for run in children:
        record: dict[str, Any] = {"trial_id": run.data.tags.get("tgo.trial_id", run.info.run_name),
                                  "run_id": run.info.run_id}
        record.update({o: run.data.metrics.get(o) for o in objectives})
        for p in searched:
            value = run.data.params.get(p)
            try:
                record[p] = json.loads(value) if value is not None else None
            except ValueError:
                record[p] = value
        record["eval"] = run.data.tags.get("eval_description")
        front.append(record)
    return front, objectives, searched
