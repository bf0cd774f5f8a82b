"""Ray's ``OptunaSearch`` made aware of pruning, failed trials and constraints.

Plain ``OptunaSearch`` tells its study ``COMPLETE`` with whatever the last result held, so
a multi-objective trial stopped early lands on the Pareto front with its early values, and
it reads the objectives from every per-epoch result. :class:`PruneAwareOptunaSearch` tells
the sampler's study exactly one of:

* ``PRUNED`` -- the :class:`~tune.search.scheduler.OptunaPruningScheduler` stopped the trial;
* ``COMPLETE`` with the objective values -- the final result has ``done_training`` and
  every objective is a finite number;
* ``FAIL`` -- the trial errored, or ended any other way (no ``done_training``, an objective
  missing, NaN or infinite).

Constraints. Samplers read ``trial.constraints`` (system attributes). Optuna 5 sets them
either with ``Trial.set_constraint`` -- pass ``constraints=Constraints(...)`` here and the
searcher sets them from the last result before telling COMPLETE or PRUNED -- or, the form
deprecated in Optuna 5, with a sampler's ``constraints_func``, which Optuna calls inside
``study.tell`` (``sampler.after_trial``) on the trial as it was *before* the tell, so it
cannot see the values passed to ``tell``. For that form the numeric entries of the last
result are stored beforehand as the user attribute ``"tune_result"``, and a COMPLETE trial
also gets one top-level user attribute per metric of ``attr_keys`` (by default
:data:`tune.objectives.OBJECTIVE_NAMES`); :class:`tune.objectives.Constraints` reads both.

Per-epoch results do not carry the objectives, so the searcher's ``metric`` property is
``None``: Tune would otherwise demand the objectives in every per-epoch result (and
``ConcurrencyLimiter`` insists that metric and mode have the same type). The objectives are
in :attr:`PruneAwareOptunaSearch.objectives`. Multi-objective
``metric``/``mode`` lists go here, never into ``TuneConfig``.

Example:
    >>> import optuna
    >>> from tune.objectives import Constraints
    >>> from tune.search.mo_asha import MOASHAPruner
    >>> from tune.search.scheduler import OptunaPruningScheduler
    >>> sched = OptunaPruningScheduler(MOASHAPruner(), ["val_clean_acc", "val_spike_rate"],
    ...                                ["max", "min"])
    >>> search = PruneAwareOptunaSearch(
    ...     metric=["clean_acc", "spike_rate"], mode=["max", "min"],
    ...     sampler=optuna.samplers.NSGAIISampler(seed=0), scheduler=sched,
    ...     constraints=Constraints.parse(["spike_rate <= 0.3"]))
"""

from __future__ import annotations

import logging
import math
import pickle
from typing import Any, Callable, Mapping, Sequence

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from tune.objectives import OBJECTIVE_NAMES, RESULT_ATTR, Constraints
from tune.search import _study_records as study_records
from tune.search.scheduler import OptunaPruningScheduler

__all__ = ["PruneAwareOptunaSearch"]

_log = logging.getLogger(__name__)

_FORMAT_KEY = "_prune_aware_format"
_FORMAT = 2
_VERSION_KEY = "_optuna_version"


def _numeric(result: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in result.items()
            if isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)}


class PruneAwareOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that tells the sampler PRUNED / FAIL / COMPLETE correctly.

    Args:
        space, points_to_evaluate, sampler, study_name, storage, seed, evaluated_rewards:
            as for :class:`ray.tune.search.optuna.OptunaSearch`.
        metric: the objective key(s) of the final result, e.g. ``["clean_acc",
            "robust_acc"]``.
        mode: ``"max"``/``"min"`` per objective.
        scheduler: the pruning scheduler whose :meth:`~OptunaPruningScheduler.is_pruned`
            marks trials PRUNED; its state is saved and restored with this searcher (Tune
            saves no scheduler). Without one, trials stopped early are told FAIL.
        constraints: set as ``Trial.set_constraint`` values before a COMPLETE or PRUNED
            tell (feasible when all <= 0).
        attr_keys: final-result metrics stored as top-level user attributes of a COMPLETE
            trial (with the objectives), for a sampler's ``constraints_func``.
        sampler_factory: a picklable callable that builds the sampler (``sampler`` defaults
            to its result). A saved searcher rebuilds its sampler with it (new random state)
            and so restores under another Optuna release; without it the sampler is pickled
            and restores only under the release that saved it.

    Example:
        >>> search = PruneAwareOptunaSearch(metric="clean_acc", mode="max")
        >>> search.objectives, search.metric
        (['clean_acc'], None)
    """

    def __init__(self, space: Any = None, metric: str | list[str] | None = None,
                 mode: str | list[str] | None = None, points_to_evaluate: list | None = None,
                 sampler: optuna.samplers.BaseSampler | None = None,
                 study_name: str | None = None, storage: Any = None, seed: int | None = None,
                 evaluated_rewards: list | None = None, *,
                 scheduler: OptunaPruningScheduler | None = None,
                 constraints: Constraints | None = None,
                 attr_keys: Sequence[str] = OBJECTIVE_NAMES,
                 sampler_factory: Callable[[], optuna.samplers.BaseSampler] | None = None
                 ) -> None:
        if constraints is not None and not isinstance(constraints, Constraints):
            raise ValueError(f"constraints: expected a tune.objectives.Constraints or None, "
                             f"got {constraints!r}")
        if scheduler is not None and not isinstance(scheduler, OptunaPruningScheduler):
            raise ValueError(f"scheduler: expected an OptunaPruningScheduler or None, "
                             f"got {scheduler!r}")
        if isinstance(metric, list) != isinstance(mode, list) or (
                isinstance(metric, list) and len(metric) != len(mode)):
            raise ValueError(f"mode: expected one mode per metric {metric!r}, got {mode!r}")
        if storage is not None:
            raise ValueError(f"storage: expected None (the study lives in memory and is saved "
                             f"with the sweep), got {storage!r}")
        if sampler_factory is not None and not callable(sampler_factory):
            raise ValueError(f"sampler_factory: expected a callable returning a sampler, "
                             f"got {sampler_factory!r}")
        if sampler is None and sampler_factory is not None:
            sampler = sampler_factory()
        super().__init__(space=space, metric=metric, mode=mode,
                         points_to_evaluate=points_to_evaluate, sampler=sampler,
                         study_name=study_name, storage=storage, seed=seed,
                         evaluated_rewards=evaluated_rewards)
        self._scheduler = scheduler
        self._constraints = constraints
        self._attr_keys = tuple(attr_keys)
        self._sampler_factory = sampler_factory

    @property
    def metric(self) -> None:
        """None, so Tune does not demand the objectives in every per-epoch result."""
        return None

    @property
    def objectives(self) -> list[str]:
        """The objective keys read from a trial's final result."""
        if self._metric is None:
            return []
        return list(self._metric) if isinstance(self._metric, list) else [self._metric]

    @property
    def study(self) -> optuna.study.Study | None:
        """The sampler's Optuna study."""
        return self._ot_study

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Ignored: pruning lives in the scheduler, the sampler needs final values only."""

    def _verdict(self, trial_id: str, result: Mapping[str, Any] | None,
                 error: bool) -> tuple[TrialState, list[float] | None, str]:
        if self._scheduler is not None and self._scheduler.is_pruned(trial_id):
            return TrialState.PRUNED, None, self._scheduler.pruned[trial_id].reason
        if error:
            return TrialState.FAIL, None, "trial errored"
        if not result or not result.get("done_training"):
            return TrialState.FAIL, None, "ended without done_training"
        values = []
        for key in self.objectives:
            v = result.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                return TrialState.FAIL, None, f"objective {key!r} missing or not finite: {v!r}"
            values.append(float(v))
        return TrialState.COMPLETE, values, "done_training"

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        """Tell the sampler's study PRUNED, FAIL or COMPLETE -- once per trial."""
        if trial_id in self._completed_trials:
            return
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None:
            _log.warning("No Optuna trial for Ray trial %s; nothing to tell.", trial_id)
            return
        state, values, reason = self._verdict(trial_id, result, error)
        ot_trial.set_user_attr("ray_trial_id", trial_id)
        ot_trial.set_user_attr("tell_reason", reason)
        numeric = _numeric(result or {})
        ot_trial.set_user_attr(RESULT_ATTR, numeric)
        if state == TrialState.COMPLETE:
            for key in dict.fromkeys(self.objectives + list(self._attr_keys)):
                if key in numeric and math.isfinite(numeric[key]):
                    ot_trial.set_user_attr(key, numeric[key])
        if self._constraints is not None and state != TrialState.FAIL:
            for key, value in self._constraints.evaluate(numeric).items():
                ot_trial.set_constraint(key, value)
        self._completed_trials.add(trial_id)
        try:
            self._ot_study.tell(ot_trial, values, state=state)
        except Exception as exc:  # e.g. a constraints_func raising; the state is still set
            _log.warning("Telling Optuna trial %d (%s) failed: %r", ot_trial.number,
                         state.name, exc)

    # ------------------------------------------------------------------ persistence
    #
    # Ray pickles the searcher twice: inside ``tuner.pkl`` when the Tuner starts and in its
    # periodic searcher checkpoints (:meth:`save`). Neither may depend on the sampler's
    # internals: Optuna 5.1's GA samplers hold a ``threading.Lock`` (unpicklable), and a
    # sampler pickled under one Optuna release need not work under the next. So the saved
    # state is plain data: the study as trial records (:mod:`tune._study_records`), the
    # Ray trial -> Optuna trial numbers, and how to build the sampler again
    # (``sampler_factory``). Only without a factory is the sampler itself pickled (its locks
    # recreated on load), and that state restores only under the Optuna release that saved
    # it.

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        study = state.pop("_ot_study")
        state["_ot_trials"] = {tid: t.number for tid, t in self._ot_trials.items()}
        state["_study_records"] = None if study is None else study_records.dump(study)
        state["_space"] = study_records.dump_space(self._space)
        sampler = state.pop("_sampler")
        state["_sampler_blob"] = None if self._sampler_factory is not None or sampler is None \
            else study_records.pickle_with_fresh_locks(sampler)
        state[_FORMAT_KEY] = _FORMAT
        state[_VERSION_KEY] = optuna.__version__
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if state.pop(_FORMAT_KEY, None) != _FORMAT:
            raise ValueError(f"searcher state: expected a PruneAwareOptunaSearch checkpoint "
                             f"of format {_FORMAT} (this tgo-sweep), got another format")
        saved_version = state.pop(_VERSION_KEY)
        records = state.pop("_study_records")
        numbers = state.pop("_ot_trials")
        blob = state.pop("_sampler_blob")
        state["_space"] = study_records.load_space(state["_space"])
        self.__dict__.update(state)
        self._sampler = self._rebuild_sampler(blob, saved_version)
        self._ot_study, self._ot_trials = None, {}
        if records is not None:
            self._ot_study = study_records.load(records, self._sampler)
            self._ot_trials = study_records.live_trials(self._ot_study, numbers)

    def _rebuild_sampler(self, blob: bytes | None, saved_version: str):
        if self._sampler_factory is not None:
            sampler = self._sampler_factory()
            # A fresh sampler with the spec's seed would draw the sweep's first points
            # again; new random state, the history comes from the trials.
            sampler.reseed_rng()
            return sampler
        if blob is None:
            return None
        if saved_version != optuna.__version__:
            raise ValueError(
                f"searcher state: its sampler was pickled under optuna {saved_version} and "
                f"optuna {optuna.__version__} is installed; pass sampler_factory= to "
                f"restore across releases, or install optuna=={saved_version}")
        return study_records.unpickle(blob)

    def save(self, checkpoint_path: str) -> None:
        """Write the searcher's plain-data state and the scheduler's records (pickle)."""
        state = self.__getstate__()
        scheduler = state.pop("_scheduler")
        state["_scheduler_state"] = scheduler.state_dict() if scheduler is not None else None
        with open(checkpoint_path, "wb") as f:
            pickle.dump(state, f)

    def restore(self, checkpoint_path: str) -> None:
        """Load a :meth:`save` checkpoint into this object, keeping its live scheduler.

        The sampler (rebuilt), study and pruning records all come back; the scheduler
        passed to this searcher (the one Tune runs) is rebuilt in place from the saved
        records.
        """
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        if not isinstance(state, dict) or state.get(_FORMAT_KEY) != _FORMAT:
            raise ValueError(f"checkpoint_path: expected a PruneAwareOptunaSearch checkpoint, "
                             f"got {type(state).__name__} without {_FORMAT_KEY}={_FORMAT} "
                             f"({checkpoint_path})")
        scheduler = self._scheduler
        scheduler_state = state.pop("_scheduler_state", None)
        self.__setstate__({**state, "_scheduler": scheduler})
        if scheduler_state is not None:
            if scheduler is None:
                _log.warning("Checkpoint holds pruning records but this searcher has no "
                             "scheduler; they are dropped.")
            else:
                scheduler.load_state_dict(scheduler_state)
        _log.info("restored the search: %s", self.summary())

    def summary(self) -> str:
        """``"NSGAIISampler study of 6 trials (3 COMPLETE, 2 PRUNED, 1 RUNNING); pruner: ..."``.

        Printed on resume, so a user sees that the sampler goes on from what it had seen
        (Ray once restored ``OptunaSearch`` as a fresh random search, ray#30861).
        """
        study = self.study
        if study is None:
            return "no study yet"
        counts: dict[str, int] = {}
        for trial in study.get_trials(deepcopy=False):
            counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
        states = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
        text = (f"{type(study.sampler).__name__} study of {sum(counts.values())} trials "
                f"({states or 'none'})")
        if self._scheduler is not None:
            text += f"; pruner: {self._scheduler.summary()}"
        return text
