"""The fast Pareto routines (moocore, numpy) and MO-ASHA's incremental rung records give
exactly what the plain O(n^2) definitions give (tests/pareto_reference.py), on random
points with ties, duplicates, NaN and infinities, and on random pruning histories."""

from __future__ import annotations

import math
import random

import numpy as np
import optuna
import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

import pareto_reference as ref
from tune.pareto import (Objective, crowding_distance, hypervolume, non_dominated_sort,
                         pareto_front, pareto_ranks)
from tune.search.mo_asha import MO_VALUES_ATTR, MOASHAPruner, decision_key, select_survivors

optuna.logging.set_verbosity(optuna.logging.WARNING)

DIRECTIONS = {1: ["max"], 2: ["max", "min"], 3: ["max", "min", "max"]}


def _points(rng: random.Random, n: int, m: int) -> list[list[float]]:
    """Values on a coarse grid (many ties and duplicates), a few NaN and inf."""
    grid = [round(0.1 * k, 1) for k in range(6)]
    pts = [[rng.choice(grid) for _ in range(m)] for _ in range(n)]
    for p in pts:
        if rng.random() < 0.08:
            p[rng.randrange(m)] = rng.choice([math.nan, math.inf, -math.inf])
    return pts


@pytest.mark.parametrize("m", [1, 2, 3])
@pytest.mark.parametrize("seed", range(40))
def test_sort_front_ranks_and_crowding_match_the_definitions(m, seed):
    rng = random.Random(seed)
    objs = [Objective(f"f{i}", d) for i, d in enumerate(DIRECTIONS[m])]
    pts = _points(rng, rng.randrange(0, 40), m)
    fronts = ref.non_dominated_sort(pts, objs)
    assert non_dominated_sort(pts, objs) == fronts
    records = [{o.name: v for o, v in zip(objs, p)} for p in pts]
    want_front = [records[i] for i in fronts[0]] if fronts else []
    assert pareto_front(records, objs) == want_front
    ranks = pareto_ranks(records, objs)
    for rank, front in enumerate(fronts):
        assert all(ranks[i] == rank for i in front)
    assert crowding_distance(pts, objs) == ref.crowding_distance(pts, objs)


@pytest.mark.parametrize("seed", range(40))
def test_hypervolume_matches_the_2d_staircase(seed):
    rng = random.Random(seed)
    objs = [Objective("a", "max"), Objective("b", "min", reference=0.9)]
    pts = _points(rng, rng.randrange(0, 60), 2)
    assert hypervolume(pts, objs) == pytest.approx(ref.hypervolume(pts, objs), abs=1e-12)


@pytest.mark.parametrize("tie_break", ["crowding", "epsilon_net"])
@pytest.mark.parametrize("seed", range(60))
def test_select_survivors_matches_the_definition(tie_break, seed):
    rng = random.Random(seed)
    m = rng.choice([1, 2, 3])
    directions = [rng.choice([StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE])
                  for _ in range(m)]
    pts = _points(rng, rng.randrange(1, 50), m)
    keep = rng.randrange(0, len(pts) + 2)
    assert select_survivors(pts, directions, keep, tie_break) == \
        ref.select_survivors(pts, directions, keep, tie_break)


def _random_history(study, decide, rng, n_trials, max_step):
    """Trials that report step by step, one to three running at once, some pruned, some
    failing; ``decide(study, frozen_trial)`` judges each report. Returns the decisions."""
    decisions, running = [], []
    for k in range(n_trials):
        running.append([study.ask(), 0, {}])
        while running and (len(running) > rng.randrange(1, 4) or k == n_trials - 1):
            entry = running[rng.randrange(len(running))]
            trial, step, values = entry
            step = entry[1] = step + rng.choice([1, 1, 1, 2])
            values[str(step)] = [round(rng.random(), 1) for _ in study.directions]
            if rng.random() < 0.03:
                values[str(step)][0] = math.nan
            study._storage.set_trial_user_attr(trial._trial_id, MO_VALUES_ATTR, dict(values))
            pruned = decide(study, study.get_trials(deepcopy=False)[trial.number])
            decisions.append(pruned)
            if pruned:
                study.tell(trial, state=TrialState.PRUNED)
            elif rng.random() < 0.05:
                study.tell(trial, state=TrialState.FAIL)
            elif step >= max_step:
                study.tell(trial, [0.0] * len(study.directions))
            else:
                continue
            running.remove(entry)
    return decisions


@pytest.mark.parametrize("tie_break", ["crowding", "epsilon_net"])
@pytest.mark.parametrize("seed", range(6))
def test_incremental_rung_records_decide_as_a_full_reread(tie_break, seed):
    """The pruner keeps its rung records between decisions; a fresh pruner reads every
    trial again (the behaviour before issue 14). Both judge every report: same decision
    and the same rung record."""
    rng = random.Random(seed)
    kw = dict(grace_period=1, reduction_factor=rng.choice([2, 3]), tie_break=tie_break)
    kept = MOASHAPruner(**kw)

    def decide(study, frozen):
        fresh = MOASHAPruner(**kw).prune(study, frozen)
        fresh_records = dict(study.get_trials(deepcopy=False)[frozen.number].system_attrs)
        assert kept.prune(study, frozen) == fresh
        assert dict(study.get_trials(deepcopy=False)[frozen.number].system_attrs) == \
            fresh_records
        return fresh

    study = optuna.create_study(directions=["maximize", "minimize"])
    decisions = _random_history(study, decide, rng, n_trials=60, max_step=9)
    assert len(decisions) > 100 and 0 < sum(decisions) < len(decisions)
    states = {t.state for t in study.get_trials(deepcopy=False)}
    assert {TrialState.PRUNED, TrialState.COMPLETE} <= states


def test_book_drops_failed_trials_and_rereads_running_ones():
    pruner = MOASHAPruner(grace_period=1, reduction_factor=2)
    study = optuna.create_study(directions=["maximize", "maximize"])

    def add(values, state=TrialState.RUNNING):
        study.add_trial(create_trial(state=state, user_attrs={
            MO_VALUES_ATTR: {str(s): v for s, v in values.items()}},
            **({"values": [0, 0]} if state == TrialState.COMPLETE else {})))
        return study.get_trials(deepcopy=False)[-1]

    strong = add({1: [0.9, 0.9]})
    weak = add({1: [0.1, 0.1]})
    assert pruner.prune(study, weak) is True                 # judged against `strong`
    # `strong` fails: it must leave the rung, so the same weak values now survive.
    study._storage.set_trial_state_values(strong._trial_id, TrialState.FAIL)
    again = add({1: [0.5, 0.5]})
    assert pruner.prune(study, again) is False
    assert study.trials[again.number].system_attrs[decision_key(0)]["n"] == 2
    # A running trial's new values are seen at the next decision.
    study._storage.set_trial_user_attr(weak._trial_id, MO_VALUES_ATTR, {"1": [0.95, 0.95]})
    late = add({1: [0.2, 0.2]})
    assert pruner.prune(study, late) is True
    assert pruner._book.describe()["rungs"] == {1: 3}
