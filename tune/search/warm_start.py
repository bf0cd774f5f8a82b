"""Warm starts: an earlier sweep's trials, read from MLflow, seed a new sweep's sampler.

:func:`load_warm_start` reads the newest parent run of ``warm_start.from_sweep``, checks
that it searched the same fields with the same distributions and optimised the same
objectives (else a :class:`~tune.spec.SpecError` on ``warm_start.*``, before any trial
starts), and turns its child runs into Optuna trials: a finished trial as COMPLETE with
its test-split objectives, a pruned one as PRUNED; failed and stopped trials are left out.
:func:`seed_study` adds them to the sampler's study, so TPE and GP model them at once and
NSGA-II takes them as its first generation.

Example:
    >>> warm = load_warm_start(spec)                      # doctest: +SKIP
    >>> seed_study(searcher.study, warm.trials)           # doctest: +SKIP
    >>> warm.summary                                      # doctest: +SKIP
    '12 finished, 0 pruned trials of sweep digits-quick (run 5f0c...)'
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import optuna
from optuna.trial import TrialState

from tune.pareto import Objective
from tune.spec import SpecError, SweepSpec

__all__ = ["WarmStart", "load_warm_start", "seed_study"]


@dataclasses.dataclass(frozen=True)
class WarmStart:
    """An earlier sweep's trials as Optuna trials, and where they came from."""

    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    trials: tuple[optuna.trial.FrozenTrial, ...]

    @property
    def summary(self) -> str:
        done = sum(t.state == TrialState.COMPLETE for t in self.trials)
        return f"{done} finished, {len(self.trials) - done} pruned"


def _fail(field: str, text: str) -> SpecError:
    return SpecError([f"warm_start.{field}: {text}"])


def _space_of(params: dict[str, str]) -> dict[str, dict[str, str]]:
    """``{field: {attribute: text}}`` from the flat ``space.<field>.<attribute>`` params the
    tracker logs on a parent run."""
    space: dict[str, dict[str, str]] = {}
    for k, v in params.items():
        parts = k.split(".", 2)
        if len(parts) == 3 and parts[0] == "space":
            space.setdefault(parts[1], {})[parts[2]] = v
    return space


def _check_same_search(spec: SweepSpec, params: dict[str, str], name: str) -> None:
    from tune.tracking import schema

    ours = {k: schema.text(v, schema.MAX_PARAM_VALUE) for k, v in
            schema.flatten({"space": spec.model_dump(mode="json")["space"]}).items()}
    theirs, mine = _space_of(params), _space_of(ours)
    if theirs != mine:
        def show(dist: dict[str, str] | None) -> str:
            if dist is None:
                return "not searched"
            return ", ".join(f"{a} {v}" for a, v in sorted(dist.items()))
        diff = sorted(k for k in set(theirs) | set(mine) if theirs.get(k) != mine.get(k))
        shown = "; ".join(f"{k}: {show(theirs.get(k))} there, {show(mine.get(k))} here"
                          for k in diff)
        raise _fail("from_sweep", f"expected sweep {name!r} to search the same space, got "
                                  f"{shown}")


def _check_same_objectives(ours: Sequence[Objective], theirs: Sequence[Objective],
                           name: str) -> None:
    def show(objs: Sequence[Objective]) -> str:
        return ", ".join(o.label for o in objs)
    if [(o.name, o.direction) for o in theirs] != [(o.name, o.direction) for o in ours]:
        raise _fail("from_sweep", f"expected sweep {name!r} to optimise the same objectives "
                                  f"({show(ours)}), got {show(theirs) or 'none recorded'}")


def _trial(run: Any, spec: SweepSpec, objectives: Sequence[Objective],
           distributions: dict[str, Any]) -> optuna.trial.FrozenTrial | None:
    from tune.tracking import schema
    from tune.tracking.reader import read_trial

    status = run.data.tags.get(schema.STATUS, "").split(" ", 1)[0].rstrip(":")
    if status not in ("finished", "pruned"):
        return None
    trial = read_trial(run)
    params = {}
    for name, dist in distributions.items():
        value = trial.params.get(name)
        if isinstance(dist, optuna.distributions.FloatDistribution) and \
                isinstance(value, int) and not isinstance(value, bool):
            value = float(value)   # MLflow params are text: 0.0 may read back as 0
        elif isinstance(dist, optuna.distributions.CategoricalDistribution):
            # the choice itself, of its own type (a float 2.0 would be no valid T)
            value = next((c for c in dist.choices if c == value
                          and not isinstance(c, bool) and not isinstance(value, bool)), value)
        try:
            inside = dist._contains(dist.to_internal_repr(value))  # noqa: SLF001
        except (ValueError, TypeError):
            inside = False
        if not inside:
            return None   # a value outside this space: not evidence about it
        params[name] = value
    attrs = {"warm_start_run_id": trial.run_id, "ray_trial_id": trial.trial_id}
    if status == "pruned":
        return optuna.trial.create_trial(params=params, distributions=distributions,
                                          state=TrialState.PRUNED, user_attrs=attrs)
    values = [trial.metrics.get(o.name) for o in objectives]
    if any(v is None for v in values):
        return None
    return optuna.trial.create_trial(params=params, distributions=distributions,
                                      values=[float(v) for v in values], user_attrs=attrs)


def load_warm_start(spec: SweepSpec, objectives: Sequence[Objective]) -> WarmStart:
    """The trials of ``spec.warm_start.from_sweep`` as Optuna trials of ``spec``'s space.

    Raises:
        SpecError: no such store, experiment or sweep, or one that searched another space
            or other objectives (``warm_start.*``).
    """
    from mlflow import MlflowClient

    from tune.tracking import schema
    from tune.tracking.reader import child_runs, find_parent_run

    ws = spec.warm_start
    uri = ws.tracking_uri or spec.mlflow.tracking_uri
    experiment = ws.experiment or ws.from_sweep
    client = MlflowClient(tracking_uri=uri)
    try:
        parent = find_parent_run(client, experiment, ws.from_sweep)
    except ValueError as exc:   # no experiment, or no sweep of that name in it
        raise _fail("from_sweep", str(exc)) from None
    _check_same_search(spec, parent.data.params, ws.from_sweep)
    _check_same_objectives(objectives, schema.objectives_from_tags(
        parent.data.tags, parent.data.params), ws.from_sweep)
    distributions = spec.optuna_space()
    runs = child_runs(client, parent.info.experiment_id, parent.info.run_id)
    trials = [t for t in (_trial(r, spec, objectives, distributions) for r in runs) if t]
    if not trials:
        raise _fail("from_sweep", f"expected finished or pruned trials in sweep "
                                  f"{ws.from_sweep!r} (run {parent.info.run_id}), got none")
    return WarmStart(parent.info.run_id, parent.info.experiment_id, uri, tuple(trials))


def seed_study(study: optuna.Study, trials: Sequence[optuna.trial.FrozenTrial]) -> None:
    """Add ``trials`` to the sampler's ``study``; a genetic sampler (NSGA-II) gets them as
    its generation 0, which it would otherwise ignore."""
    key_of = getattr(type(study.sampler), "_get_generation_key", None)
    if key_of is not None:
        key = key_of()
        trials = [_with_system_attr(t, key, 0) for t in trials]
    study.add_trials(trials)


def _with_system_attr(trial: optuna.trial.FrozenTrial, key: str, value: Any
                      ) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(
        params=trial.params, distributions=trial.distributions, values=trial.values,
        state=trial.state, user_attrs=trial.user_attrs,
        system_attrs={**trial.system_attrs, key: value})
