"""Read sweeps back from MLflow: parent runs, child-run records and Pareto fronts.

The one reader of the layout :mod:`tune.tracking.schema` names: the tracker's
``finished_records``, ``tgo pareto`` and ``tgo pick`` all read through it.

* :func:`resolve_sweep`: (name, tracking URI, experiment) from a name, spec or results folder;
* :func:`search_runs`: every page of an MLflow run search;
* :func:`find_parent_run`: the newest parent run of a sweep;
* :func:`child_runs` + :func:`read_trial`: a sweep's child runs as :class:`TrialRun` records;
* :func:`read_front`, :func:`load_front_members`: the front members with where they came from;
  :func:`load_front`: the same as flat rows for ``tgo pareto``.

Example:
    >>> front = load_front_members("digits-quick")                # doctest: +SKIP
    >>> [m.trial_id for m in front.members]                       # doctest: +SKIP
    ['3a1b_00002', '3a1b_00005']
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

from tune.pareto import Objective
from tune.redact import redact_uri
from tune.spec import SPEC_FILE, SweepSpec, default_tracking_uri, load_spec
from tune.tracking import schema

__all__ = ["SweepFront", "TrialRun", "child_runs", "find_parent_run", "load_front",
           "load_front_members", "read_front", "read_trial", "resolve_sweep", "search_runs"]


def resolve_sweep(sweep: str, tracking_uri: str | None = None, experiment: str | None = None
                  ) -> tuple[str, str, str, SweepSpec | None]:
    """(sweep name, tracking URI, experiment) from a name, a spec file or a results folder."""
    spec = None
    path = Path(sweep)
    if path.is_file():
        spec = load_spec(path).resolved()
    elif (path / SPEC_FILE).is_file():
        spec = load_spec(path / SPEC_FILE).resolved()
    name = spec.name if spec else sweep
    uri = tracking_uri or (spec.mlflow.tracking_uri if spec else default_tracking_uri())
    exp = experiment or (spec.mlflow.experiment if spec else name)
    db = uri[len("sqlite:///"):].split("?")[0] if uri.startswith("sqlite:///") else ""
    if db and db != ":memory:" and not Path(db).is_file():  # reading must not create a store
        raise ValueError(f"tracking_uri: expected an MLflow database, got {uri} where no file "
                         "exists (pass --tracking-uri, or run from the folder of the sweep)")
    return name, uri, exp, spec


def search_runs(client: Any, experiment_ids: Sequence[str], filter_string: str, *,
                order_by: Sequence[str] = ("attributes.start_time ASC",)) -> list[Any]:
    """Every run matching ``filter_string``, all pages (MLflow returns 1000 at most)."""
    runs, token = [], None
    while True:
        page = client.search_runs(list(experiment_ids), filter_string, max_results=1000,
                                  page_token=token, order_by=list(order_by))
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def find_parent_run(client: Any, experiment: str, sweep_name: str) -> Any:
    """The newest parent run of sweep ``sweep_name`` in ``experiment``."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ValueError(f"experiment: no MLflow experiment named {experiment!r} at "
                         f"{redact_uri(client.tracking_uri)}")
    runs = client.search_runs([exp.experiment_id],
                              filter_string=schema.sweeps_filter(sweep_name),
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise ValueError(f"sweep: no sweep named {sweep_name!r} in experiment {experiment!r} "
                         f"at {redact_uri(client.tracking_uri)}")
    return runs[0]


def child_runs(client: Any, experiment_id: str, parent_run_id: str, *,
               status: str | None = None, on_front: bool = False) -> list[Any]:
    """The child runs of ``parent_run_id`` (in run status ``status``, or on the front only),
    oldest first."""
    return search_runs(client, [experiment_id],
                       schema.children_filter(parent_run_id, status=status, on_front=on_front))


@dataclasses.dataclass(frozen=True)
class TrialRun:
    """A trial's child run as read back: final metrics, params and ``eval_*`` tags parsed
    from text, its checkpoint, its logged model and its front tags.

    Attributes:
        model_uri: the URI loading its logged model; None when none was logged.
        front_tags: (``pareto``, ``pareto_rank``) as tagged; None before the first front.
    """

    trial_id: str
    run_id: str
    metrics: Mapping[str, float]
    params: Mapping[str, Any]
    evaluation: Mapping[str, Any]
    checkpoint: str | None = None
    model_uri: str | None = None
    front_tags: tuple[str, str] | None = None

    def value(self, name: str) -> Any:
        """A metric (final value) or, failing that, a param."""
        return self.metrics[name] if name in self.metrics else self.params.get(name)

    def record(self, objectives: Sequence[Objective]) -> dict[str, Any]:
        """The flat record the Pareto code takes: ``trial_id``, ``run_id``, ``params``, one
        key per objective (None when missing), the ``eval_*`` tags, ``checkpoint`` and
        ``model_logged``."""
        return {"trial_id": self.trial_id, "run_id": self.run_id, "params": dict(self.params),
                **{o.name: self.metrics.get(o.name) for o in objectives},
                **self.evaluation, "checkpoint": self.checkpoint,
                "model_logged": self.model_uri is not None}


def read_trial(run: Any) -> TrialRun:
    """The :class:`TrialRun` of an MLflow child run."""
    tags, run_id = run.data.tags, run.info.run_id
    logged = tags.get(schema.MODEL_LOGGED) == "true"
    return TrialRun(
        trial_id=tags.get(schema.TRIAL_ID, run.info.run_name), run_id=run_id,
        metrics=dict(run.data.metrics),
        params={k: schema.parse(v) for k, v in run.data.params.items()},
        evaluation={k: v if k == schema.EVAL_DESCRIPTION else schema.parse(v)
                    for k, v in tags.items() if k.startswith(schema.EVAL_PREFIX)},
        checkpoint=tags.get(schema.CHECKPOINT),
        model_uri=(tags.get(schema.MODEL_URI) or f"runs:/{run_id}/model") if logged else None,
        front_tags=(tags[schema.PARETO], tags.get(schema.PARETO_RANK, ""))
        if schema.PARETO in tags else None)


@dataclasses.dataclass(frozen=True)
class SweepFront:
    """A sweep's front as read from MLflow, with where it came from."""

    name: str
    tracking_uri: str
    experiment: str
    experiment_id: str
    parent_run_id: str
    spec_hash: str | None
    objectives: tuple[Objective, ...]
    searched: tuple[str, ...]
    members: tuple[TrialRun, ...]


def read_front(client: Any, parent: Any, *, name: str, tracking_uri: str,
               experiment: str) -> SweepFront:
    """The front members (children tagged ``pareto=true``) of the parent run ``parent``,
    by trial id, with the sweep's objectives and searched param names."""
    runs = child_runs(client, parent.info.experiment_id, parent.info.run_id, on_front=True)
    members = sorted((read_trial(run) for run in runs), key=lambda m: m.trial_id)
    params = parent.data.params
    searched = tuple(sorted({k.split(".")[1] for k in params if k.startswith("space.")}))
    return SweepFront(name, tracking_uri, experiment, parent.info.experiment_id,
                      parent.info.run_id, parent.data.tags.get(schema.SPEC_HASH),
                      schema.objectives_from_tags(parent.data.tags, params), searched,
                      tuple(members))


def load_front_members(sweep: str, *, tracking_uri: str | None = None,
                       experiment: str | None = None) -> SweepFront:
    """The front of the newest sweep called ``sweep`` (a sweep name, a spec file or a Ray
    results folder, see :func:`resolve_sweep`).

    Raises:
        ValueError: no such store, experiment or sweep.
    """
    from mlflow import MlflowClient

    name, uri, exp, _ = resolve_sweep(sweep, tracking_uri, experiment)
    client = MlflowClient(tracking_uri=uri)
    parent = find_parent_run(client, exp, name)
    return read_front(client, parent, name=name, tracking_uri=uri, experiment=exp)


def load_front(sweep: str, *, tracking_uri: str | None = None, experiment: str | None = None
               ) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """The sweep's front members as flat rows (``tgo pareto``), its objective names and
    searched param names."""
    front = load_front_members(sweep, tracking_uri=tracking_uri, experiment=experiment)
    objectives = [o.name for o in front.objectives]
    records = [{"trial_id": m.trial_id, "run_id": m.run_id,
                **{o: m.metrics.get(o) for o in objectives},
                **{p: m.params.get(p) for p in front.searched},
                "eval": m.evaluation.get(schema.EVAL_DESCRIPTION)} for m in front.members]
    return records, objectives, list(front.searched)
