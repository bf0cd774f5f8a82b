"""The searcher's saved state: every sampler a spec builds survives both ways Ray saves it
(pickled inside ``tuner.pkl``, and ``save_to_dir``/``restore_from_dir``), with the study,
its trial states and the Ray trial -> Optuna trial mapping intact; and a state saved under
another Optuna release restores through the sampler factory.

Optuna 5.1's GA samplers hold a ``threading.Lock``: pickling the searcher as Ray's
``OptunaSearch`` does fails there (``cannot pickle '_thread.lock' object``)."""

import math
import pickle
import warnings

import optuna
import pytest
from optuna.trial import TrialState

from tune.objectives import Constraints
from tune.search import (PruneAwareOptunaSearch, _study_records, make_sampler, make_scheduler,
                         make_searcher)
from tune.spec import SweepSpec

SAMPLER_CASES = [("nsga2", []), ("nsga2", ["clean_acc >= 0.5"]), ("tpe", []),
                 ("tpe", ["clean_acc >= 0.5"]), ("random", []), ("gp", []),
                 ("gp", ["clean_acc >= 0.5"])]


def _spec(tmp_path, sampler: str, constraints: list[str]) -> SweepSpec:
    return SweepSpec.from_dict({
        "name": "state", "dataset": "digits", "epochs": 3,
        "space": {"margin_weight": {"type": "choice", "values": [0.0, 0.3, 0.6]},
                  "margin": {"type": "uniform", "low": 0.3, "high": 0.8},
                  "noise_scale": {"type": "uniform", "low": 0.0, "high": 0.3},
                  "timesteps": {"type": "choice", "values": [2, 4]}},
        "objectives": {"clean_acc": "max", "robust_acc": "max"},
        "constraints": constraints,
        "sampler": {"type": sampler, "seed": 0,
                    **({"population_size": 2} if sampler == "nsga2" else {})},
        "pruner": {"type": "mo_asha", "eta": 3, "grace_epochs": 1},
        "num_samples": 8,
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"},
        "storage_path": str(tmp_path / "runs"),
    })


def _final(clean: float, robust: float) -> dict:
    return {"epoch": 3, "done_training": True, "clean_acc": clean, "robust_acc": robust,
            "spike_rate": 0.1, "near_threshold": 0.2}


def _used_searcher(spec: SweepSpec) -> PruneAwareOptunaSearch:
    """A searcher that has seen every verdict: 2 COMPLETE, 1 PRUNED, 1 FAIL, 1 RUNNING."""
    scheduler = make_scheduler(spec)
    search = make_searcher(spec, scheduler)
    for tid in ("a", "b", "c", "d", "e"):
        assert search.suggest(tid)
    for tid, (clean, robust) in {"a": (0.9, 0.3), "b": (0.6, 0.6), "c": (0.2, 0.1)}.items():
        scheduler.decide(tid, {"epoch": 1, "val_clean_acc": clean, "val_robust_acc": robust})
    assert scheduler.is_pruned("c")
    search.on_trial_complete("a", _final(0.9, 0.3))
    search.on_trial_complete("b", _final(0.6, 0.6))
    search.on_trial_complete("c", {"epoch": 1, "val_clean_acc": 0.2, "val_robust_acc": 0.1})
    search.on_trial_complete("d", None, error=True)
    return search


def _trials(search: PruneAwareOptunaSearch) -> list[tuple]:
    return [(t.number, t.state, t.values, t.params, t.user_attrs, t.constraints)
            for t in search.study.trials]


def _check_restored(before: PruneAwareOptunaSearch, after: PruneAwareOptunaSearch) -> None:
    assert type(after) is PruneAwareOptunaSearch
    assert type(after.study.sampler) is type(before.study.sampler)
    assert _trials(after) == _trials(before)
    assert [t.state for t in after.study.trials] == [
        TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL,
        TrialState.RUNNING]
    assert {tid: t.number for tid, t in after._ot_trials.items()} == {
        tid: t.number for tid, t in before._ot_trials.items()}
    # The trial that was running is told once it ends; new trials are asked and told.
    after.on_trial_complete("e", _final(0.8, 0.5))
    assert after.study.trials[4].state == TrialState.COMPLETE
    assert after.study.trials[4].values == [0.8, 0.5]
    for tid in ("f", "g", "h"):
        assert after.suggest(tid)
        after.on_trial_complete(tid, _final(0.5, 0.5))
    assert [t.state for t in after.study.trials[5:]] == [TrialState.COMPLETE] * 3


@pytest.mark.parametrize("sampler,constraints", SAMPLER_CASES)
def test_searcher_pickles_and_restores_for_each_sampler(tmp_path, sampler, constraints):
    search = _used_searcher(_spec(tmp_path, sampler, constraints))
    if constraints:
        assert search.study.trials[0].constraints == pytest.approx({"clean_acc >= 0.5": -0.4})
    _check_restored(search, pickle.loads(pickle.dumps(search)))   # tuner.pkl


@pytest.mark.parametrize("sampler,constraints", SAMPLER_CASES)
def test_searcher_survives_ray_save_and_restore(tmp_path, sampler, constraints):
    spec = _spec(tmp_path, sampler, constraints)
    search = _used_searcher(spec)
    search.save_to_dir(str(tmp_path))
    fresh_scheduler = make_scheduler(spec)
    restored = make_searcher(spec, fresh_scheduler)
    restored.restore_from_dir(str(tmp_path))
    assert restored._scheduler is fresh_scheduler and fresh_scheduler.is_pruned("c")
    _check_restored(search, restored)


def test_a_restored_sampler_does_not_draw_the_sweeps_first_points_again(tmp_path):
    """The factory rebuilds the sampler with the spec's seed; without new random state a
    random search would suggest trial 0, 1, ... again after every resume."""
    search = _used_searcher(_spec(tmp_path, "random", []))
    seen = [t.params for t in search.study.trials]
    again = pickle.loads(pickle.dumps(search))
    new = [again.suggest(tid) for tid in ("f", "g", "h", "i", "j")]
    assert not [p for p in new if p in seen]


def test_legacy_constraints_func_sampler_pickles(tmp_path):
    """A sampler built with the deprecated ``constraints_func`` (NSGA-II, TPE) pickles too."""
    spec = _spec(tmp_path, "nsga2", [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        sampler = make_sampler(spec, Constraints.parse(["clean_acc >= 0.5"]))
    search = PruneAwareOptunaSearch(space=spec.optuna_space(), metric=["clean_acc", "robust_acc"],
                                    mode=["max", "max"], sampler=sampler)
    search.suggest("a")
    search.on_trial_complete("a", _final(0.4, 0.3))
    again = pickle.loads(pickle.dumps(search))
    assert type(again.study.sampler) is optuna.samplers.NSGAIISampler
    assert again.study.trials[0].values == [0.4, 0.3]
    assert again.suggest("b")


def test_a_state_from_another_optuna_release_restores_through_the_factory(tmp_path):
    spec = _spec(tmp_path, "nsga2", [])
    search = _used_searcher(spec)
    state = search.__getstate__()
    state["_optuna_version"] = "4.0.0"   # what another release would have written
    restored = PruneAwareOptunaSearch.__new__(PruneAwareOptunaSearch)
    restored.__setstate__(state)
    _check_restored(search, restored)

    # Without a factory the sampler is pickled, and only its own release may load it.
    bare = PruneAwareOptunaSearch(space=spec.optuna_space(), metric=["clean_acc", "robust_acc"],
                                  mode=["max", "max"],
                                  sampler=optuna.samplers.NSGAIISampler(seed=0))
    bare.suggest("a")
    state = bare.__getstate__()
    assert pickle.loads(pickle.dumps(bare)).study.sampler._thread_lock.acquire(blocking=False)
    state["_optuna_version"] = "4.0.0"
    with pytest.raises(ValueError, match=r"optuna 4\.0\.0 .*sampler_factory"):
        PruneAwareOptunaSearch.__new__(PruneAwareOptunaSearch).__setstate__(state)


def test_study_records_keep_every_trial_field():
    study = optuna.create_study(direction="minimize")   # report(): one objective only
    space = {"x": optuna.distributions.FloatDistribution(0, 1),
             "k": optuna.distributions.CategoricalDistribution([2, 4])}
    done = study.ask(space)
    done.report(0.5, 1)
    done.set_user_attr("u", [1, 2])
    done.set_constraint("c", -1.0)
    study.tell(done, math.inf)
    study.tell(study.ask(space), state=TrialState.PRUNED)
    study.ask(space)
    study.set_user_attr("note", "kept")
    again = _study_records.load(_study_records.dump(study), optuna.samplers.RandomSampler())
    fields = ("number", "state", "values", "params", "distributions", "user_attrs",
              "system_attrs", "intermediate_values", "datetime_start", "datetime_complete")
    assert [[getattr(t, f) for f in fields] for t in again.trials] == \
        [[getattr(t, f) for f in fields] for t in study.trials]
    assert again.user_attrs == {"note": "kept"} and again.directions == study.directions
    with pytest.raises(ValueError, match="format"):
        _study_records.load({"format": 99}, None)


def test_callbacks_see_the_restored_scheduler_after_tuner_pkl(tmp_path):
    """Ray pickles the TuneConfig (scheduler) and the RunConfig (callbacks) into one
    tuner.pkl; after loading it the callbacks still ask the very scheduler into which the
    searcher's checkpoint restores the prune records."""
    from tune.runner import _callbacks

    spec = _spec(tmp_path, "nsga2", []).resolved()
    search = _used_searcher(spec)
    scheduler = search._scheduler
    callbacks = _callbacks(spec, tmp_path, scheduler)
    state = pickle.loads(pickle.dumps({"tune_config": (search, scheduler),
                                       "run_config": callbacks}))
    restored_search, restored_scheduler = state["tune_config"]
    assert restored_search._scheduler is restored_scheduler
    for callback in state["run_config"]:
        lookup = getattr(callback, "_pruned_lookup", None) or callback._pruned
        assert lookup.__self__ is restored_scheduler
        assert lookup("c") == scheduler.prune_record("c") and lookup("a") is None
