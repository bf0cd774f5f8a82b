"""Read a finished (or running) sweep back from MLflow: its parent run and Pareto front.

Example:
    >>> front, objectives, params = load_front("digits-quick")   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tune.redact import redact_uri
from tune.spec import SweepSpec, default_tracking_uri, load_spec

__all__ = ["find_parent_run", "load_front", "resolve_sweep"]


def resolve_sweep(sweep: str, tracking_uri: str | None = None, experiment: str | None = None
                  ) -> tuple[str, str, str, SweepSpec | None]:
    """(sweep name, tracking URI, experiment) from a name, a spec file or a results folder."""
    spec = None
    path = Path(sweep)
    if path.is_file():
        spec = load_spec(path).resolved()
    elif (path / "sweep_spec.yaml").is_file():
        spec = load_spec(path / "sweep_spec.yaml").resolved()
    name = spec.name if spec else sweep
    uri = tracking_uri or (spec.mlflow.tracking_uri if spec else default_tracking_uri())
    exp = experiment or (spec.mlflow.experiment if spec else name)
    db = uri[len("sqlite:///"):].split("?")[0] if uri.startswith("sqlite:///") else ""
    if db and db != ":memory:" and not Path(db).is_file():  # reading must not create a store
        raise ValueError(f"tracking_uri: expected an MLflow database, got {uri} where no file "
                         "exists (pass --tracking-uri, or run from the folder of the sweep)")
    return name, uri, exp, spec


def find_parent_run(client: Any, experiment: str, sweep_name: str):
    """The newest parent run of sweep ``sweep_name`` in ``experiment``."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ValueError(f"experiment: no MLflow experiment named {experiment!r} at "
                         f"{redact_uri(client.tracking_uri)}")
    runs = client.search_runs([exp.experiment_id],
                              filter_string=f"tags.`tgo.kind` = 'sweep' and "
                                            f"tags.`tgo.sweep_name` = '{sweep_name}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise ValueError(f"sweep: no sweep named {sweep_name!r} in experiment {experiment!r} "
                         f"at {redact_uri(client.tracking_uri)}")
    return runs[0]


def load_front(sweep: str, *, tracking_uri: str | None = None, experiment: str | None = None
               ) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """The sweep's front members (rank 0) as flat records, its objective names and
    searched param names (read by :func:`tune.pick.load_front_members`)."""
    from tune.pick import load_front_members

    front = load_front_members(sweep, tracking_uri=tracking_uri, experiment=experiment)
    objectives = [o.name for o in front.objectives]
    records = [{"trial_id": m.trial_id, "run_id": m.run_id,
                **{o: m.metrics.get(o) for o in objectives},
                **{p: m.params.get(p) for p in front.searched},
                "eval": m.evaluation.get("eval_description")} for m in front.members]
    return records, objectives, list(front.searched)
