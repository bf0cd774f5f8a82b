"""An in-memory Optuna study as plain data, so a saved search outlives Optuna releases.

:class:`tune.search.PruneAwareOptunaSearch` saves its study with these helpers instead of
pickling ``optuna.Study``: a pickled study carries its sampler (whose internals change
between releases; Optuna 5.1's GA samplers hold a ``threading.Lock``) and Optuna's private
storage classes. A record holds only what Optuna's public ``FrozenTrial`` and
``distribution_to_json`` expose.

Example:
    >>> import optuna
    >>> study = optuna.create_study(directions=["maximize", "minimize"])
    >>> trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    >>> study.tell(trial, [0.5, 0.2])  # doctest: +ELLIPSIS
    FrozenTrial(...)
    >>> again = load(dump(study), optuna.samplers.RandomSampler())
    >>> [(t.state.name, t.values) for t in again.trials]
    [('COMPLETE', [0.5, 0.2])]
"""

from __future__ import annotations

import datetime
import io
import threading
from typing import Any, Mapping

import optuna
from optuna.distributions import BaseDistribution, distribution_to_json, json_to_distribution
from optuna.trial import FrozenTrial, TrialState
from ray import cloudpickle

__all__ = ["dump", "dump_space", "live_trials", "load", "load_space",
           "pickle_with_fresh_locks", "unpickle"]

_FORMAT = 1


def _time(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: str | None) -> datetime.datetime | None:
    return None if value is None else datetime.datetime.fromisoformat(value)


def dump(study: optuna.Study) -> dict[str, Any]:
    """Plain data of ``study``: name, directions, attributes and every trial in order."""
    return {
        "format": _FORMAT,
        "study_name": study.study_name,
        "directions": [d.name for d in study.directions],
        "user_attrs": dict(study.user_attrs),
        "system_attrs": dict(study._storage.get_study_system_attrs(study._study_id)),  # noqa: SLF001
        "trials": [{
            "number": t.number, "state": t.state.name, "values": t.values,
            "params": t.params,
            "distributions": {k: distribution_to_json(d) for k, d in t.distributions.items()},
            "user_attrs": t.user_attrs, "system_attrs": t.system_attrs,
            "intermediate_values": {str(k): v for k, v in t.intermediate_values.items()},
            "datetime_start": _time(t.datetime_start),
            "datetime_complete": _time(t.datetime_complete),
        } for t in study.get_trials(deepcopy=False)],
    }


def load(records: Mapping[str, Any], sampler: optuna.samplers.BaseSampler | None
         ) -> optuna.Study:
    """A new in-memory study holding ``records``'s trials (numbers kept), with ``sampler``."""
    if records.get("format") != _FORMAT:
        raise ValueError(f"study records: expected format {_FORMAT}, "
                         f"got {records.get('format')!r}")
    study = optuna.create_study(
        study_name=records["study_name"], sampler=sampler, pruner=optuna.pruners.NopPruner(),
        directions=[optuna.study.StudyDirection[d] for d in records["directions"]])
    for key, value in records["user_attrs"].items():
        study.set_user_attr(key, value)
    for key, value in records["system_attrs"].items():
        study._storage.set_study_system_attr(study._study_id, key, value)  # noqa: SLF001
    for number, t in enumerate(records["trials"]):
        if t["number"] != number:
            raise ValueError(f"study records: expected trial number {number}, "
                             f"got {t['number']!r}")
        state = TrialState[t["state"]]
        values = t["values"]
        study.add_trial(FrozenTrial(
            number=number, state=state, value=None, values=values,
            datetime_start=_parse_time(t["datetime_start"]),
            datetime_complete=_parse_time(t["datetime_complete"]),
            params=t["params"],
            distributions={k: json_to_distribution(d) for k, d in t["distributions"].items()},
            user_attrs=t["user_attrs"], system_attrs=t["system_attrs"],
            intermediate_values={int(k): v for k, v in t["intermediate_values"].items()},
            trial_id=-1))
    return study


def live_trials(study: optuna.Study, numbers: Mapping[str, int]) -> dict[str, optuna.Trial]:
    """Ray trial id -> the ``optuna.Trial`` (askable, tellable) of trial number ``numbers[id]``."""
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    return {tid: optuna.trial.Trial(study, by_number[n]._trial_id)  # noqa: SLF001
            for tid, n in numbers.items()}


def dump_space(space: Any) -> Any:
    """A define-and-run space (name -> distribution) as JSON text per name; others as they are."""
    if isinstance(space, Mapping) and space and all(
            isinstance(d, BaseDistribution) for d in space.values()):
        return {"distributions": {k: distribution_to_json(d) for k, d in space.items()}}
    return {"as_is": space}


def load_space(saved: Mapping[str, Any]) -> Any:
    if "distributions" in saved:
        return {k: json_to_distribution(d) for k, d in saved["distributions"].items()}
    return saved["as_is"]


_LOCK_TYPES = {type(threading.Lock()): threading.Lock, type(threading.RLock()): threading.RLock}


class _FreshLockPickler(cloudpickle.Pickler):
    """cloudpickle that saves a lock as "a new lock": locks belong to one process."""

    def reducer_override(self, obj: Any) -> Any:
        factory = _LOCK_TYPES.get(type(obj))
        if factory is not None:
            return factory, ()
        return super().reducer_override(obj)


def pickle_with_fresh_locks(obj: Any) -> bytes:
    """Pickle ``obj`` (cloudpickle: lambdas allowed); each lock in it loads as a new lock."""
    buffer = io.BytesIO()
    _FreshLockPickler(buffer).dump(obj)
    return buffer.getvalue()


def unpickle(blob: bytes) -> Any:
    return cloudpickle.loads(blob)
