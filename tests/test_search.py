"""Pruning by Optuna inside Ray Tune: MO-ASHA on hand-built studies, the scheduler and the
prune-aware searcher in real Tuner runs, and state rebuilds.

The Ray tests run real ``raytune.Tuner`` sweeps over a function trainable that reports
deterministic synthetic curves (``val_clean_acc = q * epoch / EPOCHS``, a constant
``val_spike_rate = s``), one trial at a time so that every rung decision is known in
advance. Run them inside the loopback-only namespace (see the team rules).
"""

from __future__ import annotations

import math
import pickle
import sys

import optuna
import pytest
import ray
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial
from ray import cloudpickle
from ray import tune as raytune
from ray.tune.experiment import Trial
from ray.tune.search.optuna import OptunaSearch

from tune.objectives import RESULT_ATTR, Constraints
from tune.search import PruneAwareOptunaSearch
from tune.search.mo_asha import MO_VALUES_ATTR, MOASHAPruner, decision_key, select_survivors
from tune.search.scheduler import OptunaPruningScheduler, PruneInfo

optuna.logging.set_verbosity(optuna.logging.WARNING)

EPOCHS = 4
UP = [StudyDirection.MAXIMIZE, StudyDirection.MAXIMIZE]
ACC_RATE = ["maximize", "minimize"]


# ----------------------------------------------------------------------------- helpers


def _study(directions=ACC_RATE, pruner=None) -> optuna.study.Study:
    return optuna.create_study(directions=directions, pruner=pruner)


def _add(study: optuna.study.Study, values_by_step: dict[int, list[float]]):
    """Add a running trial holding MO values per step; return it as stored."""
    attrs = {MO_VALUES_ATTR: {str(s): v for s, v in values_by_step.items()}}
    study.add_trial(create_trial(state=TrialState.RUNNING, user_attrs=attrs))
    return study.trials[-1]


def _mo_scheduler(**pruner_kw) -> OptunaPruningScheduler:
    kw = dict(grace_period=1, reduction_factor=2, min_trials_at_rung=3, max_resource=EPOCHS)
    kw.update(pruner_kw)
    return OptunaPruningScheduler(MOASHAPruner(**kw), metric=["val_clean_acc", "val_spike_rate"],
                                  mode=["max", "min"])


def _curve(q: float, s: float, epochs: int = EPOCHS) -> list[dict]:
    """The per-epoch results the synthetic trainable reports for quality q, spike rate s."""
    out = []
    for epoch in range(1, epochs + 1):
        r = {"epoch": epoch, "val_clean_acc": q * epoch / epochs, "val_spike_rate": s}
        if epoch == epochs:
            r.update(clean_acc=q, spike_rate=s, done_training=True)
        out.append(r)
    return out


def _make_trainable():
    def trainable(config):
        for r in _curve(config["q"], config["s"]):
            raytune.report(r)

    return trainable


class _RecordResults(raytune.Callback):
    """Every result in the order Tune processed it (the scheduler saw the same order)."""

    def __init__(self):
        self.results: list[dict] = []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.results.append(dict(result, trial_id=trial.trial_id))


# ----------------------------------------------------------------------------- MO-ASHA unit


def test_rung_steps_are_grace_times_eta_powers():
    assert MOASHAPruner(grace_period=2, reduction_factor=3).rung_steps(60) == [2, 6, 18, 54]
    assert MOASHAPruner(grace_period=1, reduction_factor=2, max_resource=8).rung_steps(100) == [
        1, 2, 4]
    p = MOASHAPruner(grace_period=2, reduction_factor=3)
    assert [p.rung_of(s) for s in (1, 2, 3, 6, 18, 19)] == [None, 0, None, 1, 2, None]


@pytest.mark.parametrize("kw, field", [
    ({"grace_period": 0}, "grace_period"),
    ({"reduction_factor": 1}, "reduction_factor"),
    ({"min_trials_at_rung": 0}, "min_trials_at_rung"),
    ({"tie_break": "random"}, "tie_break"),
    ({"grace_period": 4, "max_resource": 4}, "max_resource"),
])
def test_pruner_rejects_bad_settings(kw, field):
    with pytest.raises(ValueError, match=field):
        MOASHAPruner(**kw)


def test_dominated_trial_is_pruned_at_rung_and_non_dominated_kept():
    pruner = MOASHAPruner(grace_period=1, reduction_factor=2)
    study = _study(pruner=pruner)
    _add(study, {1: [0.9, 0.1]})
    _add(study, {1: [0.95, 0.3]})
    dominated = _add(study, {1: [0.5, 0.5]})            # dominated by the first
    assert pruner.prune(study, dominated) is True
    record = study.trials[dominated.number].system_attrs[decision_key(0)]
    assert record == {"step": 1, "rung_step": 1, "n": 3, "keep": 2, "pruned": True}

    study2 = _study(pruner=pruner)
    _add(study2, {1: [0.9, 0.1]})
    _add(study2, {1: [0.5, 0.5]})
    trade_off = _add(study2, {1: [0.95, 0.3]})         # on the front with the first
    assert pruner.prune(study2, trade_off) is False
    assert study2.trials[trade_off.number].system_attrs[decision_key(0)]["pruned"] is False


def test_only_trials_that_reached_the_rung_count():
    pruner = MOASHAPruner(grace_period=2, reduction_factor=2)
    study = _study(pruner=pruner)
    _add(study, {1: [0.99, 0.0]})                      # has not reached step 2: not a peer
    _add(study, {1: [0.9, 0.1], 2: [0.9, 0.1]})
    late = _add(study, {1: [0.1, 0.9], 2: [0.2, 0.9]})
    assert pruner.prune(study, late) is True           # n = 2 (not 3), keep 1
    assert study.trials[late.number].system_attrs[decision_key(0)]["n"] == 2


def test_no_pruning_below_the_minimum_count():
    study = _study()
    _add(study, {1: [0.9, 0.1]})
    dominated = _add(study, {1: [0.1, 0.9]})
    assert MOASHAPruner(min_trials_at_rung=3).prune(study, dominated) is False
    assert decision_key(0) not in study.trials[dominated.number].system_attrs
    assert MOASHAPruner().prune(study, dominated) is True   # default minimum = eta = 2


def test_judged_once_per_rung_at_the_first_step_reaching_it():
    pruner = MOASHAPruner(grace_period=1, reduction_factor=2)
    study = _study(pruner=pruner)
    _add(study, {1: [0.9, 0.1], 2: [0.9, 0.1], 3: [0.9, 0.1]})
    worse = _add(study, {1: [0.1, 0.9], 2: [0.1, 0.9], 3: [0.1, 0.9]})
    assert pruner.prune(study, worse) is False         # step 3 is no rung's first step
    skipped = _add(study, {1: [0.1, 0.9], 5: [0.1, 0.9]})  # step 5 is first past rungs 2 and 4
    assert pruner.prune(study, skipped) is True
    assert study.trials[skipped.number].system_attrs[decision_key(1)]["step"] == 5


def test_nan_values_rank_last():
    study = _study()
    _add(study, {1: [0.1, 0.9]})
    broken = _add(study, {1: [math.nan, 0.0]})
    assert MOASHAPruner().prune(study, broken) is True


# Four points on a concave front (both maximised): two extremes, one roomy, one crowded.
FRONT = [[0.0, 1.0], [1.0, 0.0], [0.3, 0.7], [0.1, 0.95]]
ISOLATED, CROWDED = [0.6, 0.45], [0.15, 0.9]


@pytest.mark.parametrize("tie_break", ["crowding", "epsilon_net"])
def test_tie_break_keeps_the_isolated_point_of_the_straddling_front(tie_break):
    # n = 5 on one front, keep ceil(5/2) = 3: both extremes plus the most isolated point.
    assert select_survivors(FRONT + [ISOLATED], UP, 3, tie_break) == {0, 1, 4}
    assert select_survivors(FRONT + [CROWDED], UP, 3, tie_break) == {0, 1, 2}

    pruner = MOASHAPruner(tie_break=tie_break)
    for point, pruned in ((ISOLATED, False), (CROWDED, True)):
        study = _study(["maximize", "maximize"], pruner)
        for p in FRONT:
            _add(study, {1: p})
        assert pruner.prune(study, _add(study, {1: point})) is pruned


def test_select_survivors_fills_whole_fronts_first():
    pts = [[0.0, 0.0], [1.0, 1.0], [0.5, 0.5], [2.0, 0.0]]   # fronts {1, 3}, {2}, {0}
    assert select_survivors(pts, UP, 3) == {1, 2, 3}
    assert select_survivors(pts, UP, 1) == {1}                 # two inf crowding: lower index


def test_pruner_works_on_single_objective_intermediate_values():
    pruner = MOASHAPruner(grace_period=1, reduction_factor=2)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for v in (0.9, 0.8):
        study.add_trial(create_trial(state=TrialState.RUNNING, intermediate_values={1: v}))
    study.add_trial(create_trial(state=TrialState.RUNNING, intermediate_values={1: 0.1}))
    assert pruner.prune(study, study.trials[-1]) is True


# ----------------------------------------------------------------------------- scheduler unit


def test_scheduler_rejects_bad_settings():
    with pytest.raises(ValueError, match="mode"):
        OptunaPruningScheduler(MOASHAPruner(), ["a", "b"], ["max"])
    with pytest.raises(ValueError, match="mode"):
        OptunaPruningScheduler(MOASHAPruner(), "a", "up")
    with pytest.raises(ValueError, match="multi-objective pruner"):
        OptunaPruningScheduler(optuna.pruners.MedianPruner(), ["a", "b"], ["max", "min"])
    with pytest.raises(ValueError, match="epoch"):
        _mo_scheduler().decide("t", {"epoch": 1.5, "val_clean_acc": 0.1, "val_spike_rate": 0.1})


def test_complete_after_stop_does_not_tell_twice():
    sched = _mo_scheduler(min_trials_at_rung=2)
    trials = {name: Trial("__fake", trial_id=name, stub=True) for name in ("good", "bad")}
    assert sched.on_trial_result(None, trials["good"], _curve(0.9, 0.1)[0]) == "CONTINUE"
    last = _curve(0.2, 0.8)[0]
    assert sched.on_trial_result(None, trials["bad"], last) == "STOP"
    assert sched.pruned == {"bad": PruneInfo(1, 0, sched.pruned["bad"].reason)}
    assert "rung 0" in sched.pruned["bad"].reason
    # Tune calls on_trial_complete after a STOP; a second tell would raise in Optuna.
    sched.on_trial_complete(None, trials["bad"], last)
    sched.on_trial_error(None, trials["bad"])
    assert sched.on_trial_result(None, trials["bad"], _curve(0.2, 0.8)[1]) == "STOP"
    states = {t.user_attrs["ray_trial_id"]: t.state for t in sched.study.trials}
    assert states == {"good": TrialState.RUNNING, "bad": TrialState.PRUNED}
    for r in _curve(0.9, 0.1)[1:]:
        assert sched.on_trial_result(None, trials["good"], r) == "CONTINUE"  # done_training
    sched.on_trial_complete(None, trials["good"], _curve(0.9, 0.1)[-1])
    sched.on_trial_complete(None, trials["good"], _curve(0.9, 0.1)[-1])
    good = [t for t in sched.study.trials if t.user_attrs["ray_trial_id"] == "good"][0]
    assert good.state == TrialState.COMPLETE and good.values == [0.9, 0.1]
    assert "1 of 2 trials pruned" in sched.debug_string()


def test_failed_trial_is_mirrored_afresh_when_re_added():
    sched = _mo_scheduler()
    trial = Trial("__fake", trial_id="t", stub=True)
    sched.on_trial_result(None, trial, _curve(0.5, 0.5)[0])
    sched.on_trial_error(None, trial)
    sched.on_trial_add(None, trial)                    # requeued: a new mirror trial
    sched.on_trial_result(None, trial, _curve(0.5, 0.5)[0])
    assert [t.state for t in sched.study.trials] == [TrialState.FAIL, TrialState.RUNNING]


def test_state_dict_round_trip_and_pickle_reproduce_hyperband_decisions():
    def make():
        pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=EPOCHS,
                                                reduction_factor=2)
        return OptunaPruningScheduler(pruner, "val_clean_acc", "max")

    sched = make()
    qualities = [0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.05]
    for i, q in enumerate(qualities):
        for r in _curve(q, 0.0):
            if sched.decide(f"t{i}", r) == "STOP":
                break
        sched.finish(f"t{i}")
    assert sched.pruned, "the synthetic sweep should prune something"
    assert all(p.rung is not None for p in sched.pruned.values())

    state = sched.state_dict()
    restored = make()
    restored.load_state_dict(state)
    copied = pickle.loads(pickle.dumps(sched))
    for other in (restored, copied):
        assert other.pruned == sched.pruned
        assert [t.system_attrs for t in other.study.trials] == [
            t.system_attrs for t in sched.study.trials]
    probe = [sched.decide("probe", r) for r in _curve(0.15, 0.0)]
    assert [restored.decide("probe", r) for r in _curve(0.15, 0.0)] == probe
    assert "STOP" in probe


def test_load_state_dict_rejects_other_metrics():
    with pytest.raises(ValueError, match="metrics"):
        OptunaPruningScheduler(optuna.pruners.NopPruner(), "val_x", "max").load_state_dict(
            _mo_scheduler().state_dict())


# ----------------------------------------------------------------------------- searcher unit


def test_constraints_values():
    c = Constraints.parse(["spike_rate <= 0.2", "clean_acc >= 0.5"])
    assert c.evaluate({"spike_rate": 0.3, "clean_acc": 0.9}) == pytest.approx(
        {"spike_rate <= 0.2": 0.1, "clean_acc >= 0.5": -0.4})
    # A pruned trial only has the per-epoch stand-ins; nothing at all -> infeasible.
    assert c.evaluate({"val_spike_rate": 0.1, "val_clean_acc": 0.4}) == pytest.approx(
        {"spike_rate <= 0.2": -0.1, "clean_acc >= 0.5": 0.1})
    assert c.evaluate({}) == {"spike_rate <= 0.2": math.inf, "clean_acc >= 0.5": math.inf}
    with pytest.raises(ValueError, match="expected"):
        Constraints.parse(["spike_rate <= nan"])


def test_searcher_verdicts_without_ray():
    space = {"q": optuna.distributions.FloatDistribution(0, 1)}
    sched = _mo_scheduler(min_trials_at_rung=2)
    search = PruneAwareOptunaSearch(space, metric=["clean_acc", "spike_rate"],
                                    mode=["max", "min"], scheduler=sched,
                                    constraints=Constraints.parse(["spike_rate <= 0.5"]))
    assert search.metric is None and search.objectives == ["clean_acc", "spike_rate"]
    for tid in ("done", "pruned", "nan", "early", "error"):
        search.suggest(tid)
    sched.decide("done", _curve(0.9, 0.1)[0])
    assert sched.decide("pruned", _curve(0.1, 0.9)[0]) == "STOP"
    search.on_trial_complete("done", _curve(0.9, 0.1)[-1])
    search.on_trial_complete("pruned", _curve(0.1, 0.9)[0])
    search.on_trial_complete("pruned", _curve(0.1, 0.9)[0])       # second call: no-op
    search.on_trial_complete("nan", dict(_curve(0.9, 0.1)[-1], clean_acc=math.nan))
    search.on_trial_complete("early", _curve(0.9, 0.1)[1])        # no done_training
    search.on_trial_complete("error", None, error=True)
    by_id = {t.user_attrs["ray_trial_id"]: t for t in search.study.trials}
    assert {k: t.state for k, t in by_id.items()} == {
        "done": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "nan": TrialState.FAIL,
        "early": TrialState.FAIL, "error": TrialState.FAIL}
    assert by_id["done"].values == [0.9, 0.1]
    assert by_id["done"].constraints == pytest.approx({"spike_rate <= 0.5": -0.4})
    assert by_id["pruned"].constraints == pytest.approx({"spike_rate <= 0.5": 0.4})
    assert by_id["pruned"].user_attrs[RESULT_ATTR]["val_spike_rate"] == 0.9
    assert [t.number for t in search.study.best_trials] == [by_id["done"].number]


def test_legacy_constraints_func_sees_the_final_result():
    # Optuna calls a sampler's constraints_func inside tell, before the values are stored.
    func = Constraints.parse(["spike_rate <= 0.2"])
    space = {"q": optuna.distributions.FloatDistribution(0, 1)}
    with pytest.warns(FutureWarning, match="constraints_func"):
        sampler = optuna.samplers.NSGAIISampler(seed=0, constraints_func=func)
    search = PruneAwareOptunaSearch(space, metric=["clean_acc", "robust_acc"],
                                    mode=["max", "max"], sampler=sampler)
    search.suggest("a")
    search.on_trial_complete("a", dict(_curve(0.9, 0.3)[-1], robust_acc=0.5))
    (trial,) = search.study.trials
    assert trial.state == TrialState.COMPLETE and trial.values == [0.9, 0.5]
    assert trial.user_attrs["spike_rate"] == 0.3
    assert list(trial.constraints.values()) == pytest.approx([0.1])


def test_restore_keeps_class_sampler_study_and_scheduler(tmp_path):
    space = {"q": optuna.distributions.FloatDistribution(0, 1)}
    sched = _mo_scheduler(min_trials_at_rung=2)
    search = PruneAwareOptunaSearch(space, metric=["clean_acc", "spike_rate"],
                                    mode=["max", "min"], scheduler=sched,
                                    sampler=optuna.samplers.NSGAIISampler(seed=3))
    for tid, (q, s) in {"a": (0.9, 0.1), "b": (0.1, 0.9)}.items():
        search.suggest(tid)
        decision = sched.decide(tid, _curve(q, s)[0])
        search.on_trial_complete(tid, _curve(q, s)[-1 if decision == "CONTINUE" else 0])
    search.save_to_dir(str(tmp_path))

    sched2 = _mo_scheduler(min_trials_at_rung=2)
    search2 = PruneAwareOptunaSearch(space, metric=["clean_acc", "spike_rate"],
                                     mode=["max", "min"], scheduler=sched2)   # default TPE
    search2.restore_from_dir(str(tmp_path))
    assert type(search2) is PruneAwareOptunaSearch and search2._scheduler is sched2
    assert isinstance(search2.study.sampler, optuna.samplers.NSGAIISampler)
    assert [t.state for t in search2.study.trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert sched2.pruned == sched.pruned and set(sched2.pruned) == {"b"}

    plain = tmp_path / "plain"
    plain.mkdir()
    OptunaSearch(space, metric="clean_acc", mode="max").save_to_dir(str(plain))
    with pytest.raises(ValueError, match="PruneAwareOptunaSearch checkpoint"):
        search2.restore_from_dir(str(plain))


# ----------------------------------------------------------------------------- real Ray Tune


@pytest.fixture(scope="module")
def ray_local():
    # Workers cannot import this test module: ship its functions by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


# Sequential order: the two Pareto-optimal trials first, then two dominated ones.
MO_POINTS = [{"q": 0.9, "s": 0.1}, {"q": 0.95, "s": 0.3}, {"q": 0.5, "s": 0.5},
             {"q": 0.4, "s": 0.6}]


def _fit(tmp_path, name, search, sched, n, callbacks=()):
    tuner = raytune.Tuner(
        _make_trainable(),
        param_space={"q": raytune.uniform(0, 1), "s": raytune.uniform(0, 1)},
        tune_config=raytune.TuneConfig(search_alg=search, scheduler=sched, num_samples=n,
                                       max_concurrent_trials=1, reuse_actors=True),
        run_config=raytune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0,
                                     callbacks=list(callbacks)),
    )
    grid = tuner.fit()
    assert not grid.errors
    return grid


def _ids_by_q(grid) -> dict[float, str]:
    return {r.config["q"]: r.metrics["trial_id"] for r in grid}


def test_mo_asha_in_tuner_stops_dominated_trials_and_sampler_sees_pruned(ray_local, tmp_path):
    sched = _mo_scheduler()
    search = PruneAwareOptunaSearch(metric=["clean_acc", "spike_rate"], mode=["max", "min"],
                                    points_to_evaluate=MO_POINTS, scheduler=sched,
                                    sampler=optuna.samplers.NSGAIISampler(seed=0))
    recorder = _RecordResults()
    grid = _fit(tmp_path, "mo", search, sched, len(MO_POINTS), [recorder])
    ids = _ids_by_q(grid)
    epochs = {r.config["q"]: len(r.metrics_dataframe) for r in grid}
    assert epochs == {0.9: EPOCHS, 0.95: EPOCHS, 0.5: 1, 0.4: 1}
    assert {t: (p.epoch, p.rung) for t, p in sched.pruned.items()} == {
        ids[0.5]: (1, 0), ids[0.4]: (1, 0)}

    by_id = {t.user_attrs["ray_trial_id"]: t for t in search.study.trials}
    assert by_id[ids[0.5]].state == by_id[ids[0.4]].state == TrialState.PRUNED
    assert by_id[ids[0.9]].state == by_id[ids[0.95]].state == TrialState.COMPLETE
    assert by_id[ids[0.9]].values == [0.9, 0.1] and by_id[ids[0.95]].values == [0.95, 0.3]
    front = {t.user_attrs["ray_trial_id"] for t in search.study.best_trials}
    assert front == {ids[0.9], ids[0.95]}
    # The mirror study holds one trial per Ray trial, told exactly once.
    mirror = {t.user_attrs["ray_trial_id"]: t.state for t in sched.study.trials}
    assert mirror == {ids[0.9]: TrialState.COMPLETE, ids[0.95]: TrialState.COMPLETE,
                      ids[0.5]: TrialState.PRUNED, ids[0.4]: TrialState.PRUNED}

    # Rebuilds: from the state dict, from the results in processing order, and from the
    # results per trial; all make the original decisions, now and on a new trial.
    from_state = _mo_scheduler()
    from_state.load_state_dict(sched.state_dict())
    from_log = _mo_scheduler()
    from_log.rebuild(recorder.results)
    per_trial = {r.metrics["trial_id"]: r.metrics_dataframe.to_dict("records") for r in grid}
    from_grid = _mo_scheduler()
    from_grid.rebuild({ids[p["q"]]: per_trial[ids[p["q"]]] for p in MO_POINTS})  # run order
    pruned = sched.pruned
    probe = _curve(0.45, 0.55)
    expected = [sched.decide("probe", r) for r in probe]
    assert expected[0] == "STOP"
    for other in (from_state, from_log, from_grid):
        assert other.pruned == pruned
        assert [other.decide("probe", r) for r in probe] == expected

    # A restored Tuner restores our searcher (not a fallback) and, through it, the
    # scheduler's prune records, which Tune itself does not save.
    restored = raytune.Tuner.restore(str(tmp_path / "mo"), trainable=_make_trainable())
    restored.fit()
    cfg = restored._local_tuner._tune_config
    assert type(cfg.search_alg) is PruneAwareOptunaSearch
    assert cfg.search_alg._scheduler is cfg.scheduler
    assert cfg.scheduler.pruned == pruned
    assert len(cfg.search_alg.study.trials) == len(MO_POINTS)


def test_median_pruner_in_tuner_prunes_the_bad_trial(ray_local, tmp_path):
    sched = OptunaPruningScheduler(
        optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
        metric="val_clean_acc", mode="max")
    points = [{"q": 0.9, "s": 0.1}, {"q": 0.8, "s": 0.1}, {"q": 0.2, "s": 0.1}]
    search = PruneAwareOptunaSearch(metric="clean_acc", mode="max", scheduler=sched,
                                    points_to_evaluate=points)
    grid = _fit(tmp_path, "median", search, sched, len(points))
    ids = _ids_by_q(grid)
    assert {t: p.epoch for t, p in sched.pruned.items()} == {ids[0.2]: 1}
    assert sched.pruned[ids[0.2]].rung is None
    assert "MedianPruner at epoch 1" in sched.pruned[ids[0.2]].reason
    by_id = {t.user_attrs["ray_trial_id"]: t for t in search.study.trials}
    assert by_id[ids[0.2]].state == TrialState.PRUNED
    assert [by_id[ids[q]].value for q in (0.9, 0.8)] == [0.9, 0.8]
    assert search.study.best_trial.user_attrs["ray_trial_id"] == ids[0.9]


def test_concurrent_sweep_keeps_sampler_and_scheduler_consistent(ray_local, tmp_path):
    # Two trials at a time: which trials reach a rung first is up to timing, so only the
    # invariants are checked, whatever got pruned.
    points = MO_POINTS + [{"q": 0.3, "s": 0.7}, {"q": 0.97, "s": 0.05}]
    sched = _mo_scheduler(min_trials_at_rung=2)
    search = PruneAwareOptunaSearch(metric=["clean_acc", "spike_rate"], mode=["max", "min"],
                                    points_to_evaluate=points, scheduler=sched,
                                    sampler=optuna.samplers.NSGAIISampler(seed=0))
    tuner = raytune.Tuner(
        _make_trainable(),
        param_space={"q": raytune.uniform(0, 1), "s": raytune.uniform(0, 1)},
        tune_config=raytune.TuneConfig(search_alg=search, scheduler=sched,
                                       num_samples=len(points), max_concurrent_trials=2,
                                       reuse_actors=True),
        run_config=raytune.RunConfig(storage_path=str(tmp_path), verbose=0))
    grid = tuner.fit()
    assert not grid.errors
    by_id = {t.user_attrs["ray_trial_id"]: t for t in search.study.trials}
    mirror = {t.user_attrs["ray_trial_id"]: t.state for t in sched.study.trials}
    assert len(by_id) == len(mirror) == len(points)
    for r in grid:
        tid, ran = r.metrics["trial_id"], len(r.metrics_dataframe)
        if tid in sched.pruned:
            assert by_id[tid].state == mirror[tid] == TrialState.PRUNED
            assert ran == sched.pruned[tid].epoch < EPOCHS
        else:
            assert by_id[tid].state == mirror[tid] == TrialState.COMPLETE
            assert by_id[tid].values == [r.config["q"], r.config["s"]] and ran == EPOCHS
    assert all(t.state == TrialState.COMPLETE for t in search.study.best_trials)
