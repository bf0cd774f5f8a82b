"""Pareto logic on made-up points, checked against values computed by hand."""

from __future__ import annotations

import doctest
import itertools
import math

import moocore
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tune.pareto as pareto_module
from tune.pareto import (
    Direction,
    Objective,
    crowding_distance,
    dominates,
    hypervolume,
    non_dominated_sort,
    pareto_front,
    pareto_ranks,
)

MAX2 = [Objective("a", "max"), Objective("b", "max")]
ACC_RATE = [Objective("robust_acc", "max"), Objective("spike_rate", "min")]
NAN = float("nan")


# ----------------------------------------------------------------------------- Objective


def test_objective_defaults_and_enum():
    acc, rate = Objective("robust_acc", "max"), Objective("spike_rate", "min")
    assert acc.direction is Direction.MAX and acc.direction == "max"
    assert acc.reference == 0.0 and rate.reference == 1.0
    assert Objective("x", "min", reference=2).reference == 2.0
    assert acc.label == "robust_acc (max)"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "x", "direction": "maximize"}, "Objective.direction"),
        ({"name": "", "direction": "max"}, "Objective.name"),
        ({"name": "x", "direction": "max", "reference": math.nan}, "Objective.reference"),
        ({"name": "x", "direction": "max", "reference": "0"}, "Objective.reference"),
    ],
)
def test_objective_rejects_bad_fields(kwargs, field):
    with pytest.raises(ValueError, match=field):
        Objective(**kwargs)


def test_objective_is_frozen():
    with pytest.raises(AttributeError):
        Objective("x", "max").name = "y"  # type: ignore[misc]


def test_bad_objectives_and_points_raise():
    with pytest.raises(ValueError, match="objectives"):
        dominates([1], [0], [])
    with pytest.raises(ValueError, match="unique"):
        dominates([1, 1], [0, 0], [Objective("a", "max"), Objective("a", "min")])
    with pytest.raises(ValueError, match="expected 2 values"):
        dominates([1, 2, 3], [0, 0], MAX2)
    with pytest.raises(ValueError, match="a: expected a number"):
        dominates({"a": "high", "b": 1}, [0, 0], MAX2)


# ----------------------------------------------------------------------------- dominance


def test_dominance_cases():
    assert dominates([0.9, 0.5], [0.8, 0.5], MAX2)
    assert not dominates([0.8, 0.5], [0.9, 0.5], MAX2)
    # equal points do not dominate each other
    assert not dominates([0.5, 0.5], [0.5, 0.5], MAX2)
    # trade-off: neither dominates
    assert not dominates([0.9, 0.1], [0.1, 0.9], MAX2)
    assert not dominates([0.1, 0.9], [0.9, 0.1], MAX2)


def test_dominance_mixes_min_and_max():
    # higher accuracy and LOWER spike rate dominates
    assert dominates([0.8, 0.1], [0.7, 0.2], ACC_RATE)
    # higher accuracy but higher spike rate: a trade-off
    assert not dominates([0.8, 0.3], [0.7, 0.2], ACC_RATE)
    # same accuracy, lower rate dominates; higher rate is dominated
    assert dominates([0.7, 0.1], [0.7, 0.2], ACC_RATE)
    assert not dominates([0.7, 0.2], [0.7, 0.1], ACC_RATE)


def test_dominance_accepts_mappings_and_ignores_extra_keys():
    a = {"robust_acc": 0.8, "spike_rate": 0.1, "trial_id": "t1"}
    b = {"spike_rate": 0.2, "robust_acc": 0.7}
    assert dominates(a, b, ACC_RATE) and not dominates(b, a, ACC_RATE)
    assert dominates(a, [0.7, 0.2], ACC_RATE)


def test_invalid_points_neither_dominate_nor_are_dominated():
    assert not dominates([NAN, 1.0], [0.0, 0.0], MAX2)
    assert not dominates([1.0, 1.0], [NAN, 0.0], MAX2)
    assert not dominates({"a": 1.0}, {"a": 0.0, "b": 0.0}, MAX2)
    assert not dominates([math.inf, 1.0], [0.0, 0.0], MAX2)


# ----------------------------------------------------------------------------- sorting


def test_sort_three_known_fronts():
    pts = [
        [0.2, 0.2],  # 0: front 2 (dominated by 4)
        [0.9, 0.1],  # 1: front 0
        [0.5, 0.5],  # 2: front 0
        [0.1, 0.9],  # 3: front 0
        [0.4, 0.4],  # 4: front 1 (dominated by 2)
        [0.8, 0.05],  # 5: front 1 (dominated by 1)
        [0.05, 0.3],  # 6: front 2 (dominated by 4, 3; not by 0 nor 5)
    ]
    assert non_dominated_sort(pts, MAX2) == [[1, 2, 3], [4, 5], [0, 6]]
    assert pareto_ranks([dict(zip("ab", p)) for p in pts], MAX2) == [2, 0, 0, 0, 1, 1, 2]


def test_sort_min_objective_flips_order():
    pts = [[0.5, 0.1], [0.5, 0.2], [0.5, 0.3]]
    assert non_dominated_sort(pts, ACC_RATE) == [[0], [1], [2]]
    flipped = [Objective("robust_acc", "max"), Objective("spike_rate", "max")]
    assert non_dominated_sort(pts, flipped) == [[2], [1], [0]]


def test_duplicates_share_a_front():
    assert non_dominated_sort([[0.5, 0.5], [0.5, 0.5], [0.1, 0.1]], MAX2) == [[0, 1], [2]]


def test_invalid_points_go_last_and_never_on_front_zero():
    pts = [[NAN, 0.9], [0.1, 0.1], [0.9, 0.9], {"a": 0.99}, [None, None]]
    assert non_dominated_sort(pts, MAX2) == [[2], [1], [0, 3, 4]]
    # only invalid points: front 0 stays empty
    assert non_dominated_sort([[NAN, 1.0], {"b": 1.0}], MAX2) == [[], [0, 1]]
    assert non_dominated_sort([], MAX2) == []


def test_pareto_front_and_ranks_on_records():
    recs = [
        {"trial_id": "t0", "robust_acc": 0.50, "spike_rate": 0.20},
        {"trial_id": "t1", "robust_acc": 0.40, "spike_rate": 0.30},  # dominated by t0
        {"trial_id": "t2", "robust_acc": 0.60, "spike_rate": 0.40},
        {"trial_id": "t3", "robust_acc": 0.90},  # missing spike_rate
        {"trial_id": "t4", "robust_acc": 0.95, "spike_rate": NAN},
    ]
    front = pareto_front(recs, ACC_RATE)
    assert [r["trial_id"] for r in front] == ["t0", "t2"]
    assert front[0] is recs[0]
    assert pareto_ranks(recs, ACC_RATE) == [0, 1, 0, 2, 2]
    assert pareto_front([], ACC_RATE) == []
    assert pareto_front([recs[3]], ACC_RATE) == []


# ----------------------------------------------------------------------------- crowding


def test_crowding_distance_four_point_front_by_hand():
    # robust_acc (max) vs spike_rate (min); every point trades accuracy for spikes.
    pts = [[0.2, 0.10], [0.4, 0.20], [0.5, 0.30], [0.8, 0.50]]
    d = crowding_distance(pts, ACC_RATE)
    # acc range 0.6, rate range 0.4
    # point 1: (0.5 - 0.2) / 0.6 + (0.3 - 0.1) / 0.4 = 0.5 + 0.5
    # point 2: (0.8 - 0.4) / 0.6 + (0.5 - 0.2) / 0.4 = 0.6667 + 0.75
    assert d[0] == math.inf and d[3] == math.inf
    assert d[1] == pytest.approx(1.0)
    assert d[2] == pytest.approx(0.4 / 0.6 + 0.75)


def test_crowding_distance_small_degenerate_and_invalid():
    assert crowding_distance([[0.1, 0.2], [0.3, 0.4]], MAX2) == [math.inf, math.inf]
    # all points agree on b: only a contributes
    d = crowding_distance([[0.0, 0.5], [0.25, 0.5], [1.0, 0.5]], MAX2)
    assert d[1] == pytest.approx(1.0)
    # an invalid point gets 0 and is not anybody's neighbour
    d = crowding_distance([[0.0, 1.0], [NAN, 0.7], [0.5, 0.5], [1.0, 0.0]], MAX2)
    assert d[1] == 0.0
    assert d[2] == pytest.approx(2.0)


# ----------------------------------------------------------------------------- hypervolume


def test_hypervolume_2d_staircase_by_hand():
    pts = [[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]]
    # 0.9 * 0.1 + 0.5 * (0.5 - 0.1) + 0.2 * (0.8 - 0.5)
    assert hypervolume(pts, MAX2) == pytest.approx(0.35)
    assert hypervolume(list(reversed(pts)), MAX2) == pytest.approx(0.35)
    assert moocore.hypervolume(np.array(pts), ref=[0.0, 0.0], maximise=True) == pytest.approx(0.35)


def test_hypervolume_2d_min_max_by_hand_and_moocore():
    pts = [[0.5, 0.2], [0.4, 0.3], [0.6, 0.4]]  # robust_acc max, spike_rate min, ref (0, 1)
    # (0.6 - 0) * (1 - 0.4) + (0.5 - 0) * (0.4 - 0.2); [0.4, 0.3] is dominated
    expected = 0.6 * 0.6 + 0.5 * 0.2
    assert hypervolume(pts, ACC_RATE) == pytest.approx(expected)
    mc = moocore.hypervolume(np.array(pts), ref=[0.0, 1.0], maximise=[True, False])
    assert mc == pytest.approx(expected)


def test_hypervolume_dominated_and_reference_points_add_nothing():
    base = [[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]]
    hv = hypervolume(base, MAX2)
    assert hypervolume(base + [[0.4, 0.4], [0.5, 0.5], [0.1, 0.05]], MAX2) == pytest.approx(hv)
    # on the reference (no strict improvement), beyond it, or invalid: nothing
    assert hypervolume([[0.0, 0.9], [0.9, 0.0], [-0.5, 0.5]], MAX2) == 0.0
    assert hypervolume(base + [[1.0, 0.0], [NAN, 1.0], {"a": 1.0}], MAX2) == pytest.approx(hv)
    assert hypervolume([], MAX2) == 0.0


def test_hypervolume_custom_reference():
    objs = [Objective("a", "max", reference=0.5), Objective("b", "min", reference=0.5)]
    # gains (0.9 - 0.5, 0.5 - 0.1) = (0.4, 0.4); the second point is worse than ref in a
    assert hypervolume([[0.9, 0.1], [0.4, 0.0]], objs) == pytest.approx(0.16)


def test_hypervolume_1d():
    assert hypervolume([[0.3], [0.7], [NAN]], [Objective("a", "max")]) == pytest.approx(0.7)
    assert hypervolume([[0.3], [0.7]], [Objective("r", "min")]) == pytest.approx(0.7)


THREE = [Objective("clean_acc", "max"), Objective("robust_acc", "max"), Objective("spike_rate", "min")]


def test_hypervolume_3d_single_box_and_union_by_hand():
    a = [0.5, 0.4, 0.8]  # gains 0.5, 0.4, 0.2 -> box 0.04
    b = [0.2, 0.8, 0.7]  # gains 0.2, 0.8, 0.3 -> box 0.048
    assert hypervolume([a], THREE) == pytest.approx(0.5 * 0.4 * 0.2)
    # inclusion-exclusion: |A| + |B| - |A and B|, the intersection box is (0.2, 0.4, 0.2)
    union = 0.04 + 0.048 - 0.2 * 0.4 * 0.2
    assert hypervolume([a, b], THREE) == pytest.approx(union)
    # mappings, a dominated point and an invalid one change nothing
    recs = [dict(zip(["clean_acc", "robust_acc", "spike_rate"], p)) for p in (a, b)]
    recs += [{"clean_acc": 0.1, "robust_acc": 0.1, "spike_rate": 0.9}, {"clean_acc": 0.99}]
    assert hypervolume(recs, THREE) == pytest.approx(union)


def test_hypervolume_3d_three_points_by_inclusion_exclusion():
    gains = [(0.5, 0.4, 0.2), (0.2, 0.8, 0.3), (0.3, 0.3, 0.6)]
    pts = [[g[0], g[1], 1.0 - g[2]] for g in gains]
    total = 0.0
    for k in range(1, 4):
        for subset in itertools.combinations(gains, k):
            box = math.prod(min(c) for c in zip(*subset))
            total += (-1) ** (k + 1) * box
    assert hypervolume(pts, THREE) == pytest.approx(total)


# ----------------------------------------------------------------------------- properties

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
points2 = st.lists(st.tuples(unit, unit), min_size=0, max_size=12)
points3 = st.lists(st.tuples(unit, unit, unit), min_size=0, max_size=8)
DIRS = [Objective("x", "max"), Objective("y", "min"), Objective("z", "max")]


@settings(max_examples=60, deadline=None)
@given(points2, st.tuples(unit, unit))
def test_adding_a_point_never_decreases_hypervolume_2d(pts, extra):
    objs = DIRS[:2]
    before = hypervolume(pts, objs)
    assert hypervolume(pts + [extra], objs) >= before - 1e-12


@settings(max_examples=40, deadline=None)
@given(points3, st.tuples(unit, unit, unit))
def test_adding_a_point_never_decreases_hypervolume_3d(pts, extra):
    before = hypervolume(pts, DIRS)
    assert hypervolume(pts + [extra], DIRS) >= before - 1e-12


@settings(max_examples=60, deadline=None)
@given(points2)
def test_2d_sweep_matches_moocore(pts):
    objs = DIRS[:2]
    ours = hypervolume(pts, objs)
    keep = [p for p in pts if p[0] > 0.0 and p[1] < 1.0]
    ref = moocore.hypervolume(np.array(keep), ref=[0.0, 1.0], maximise=[True, False]) if keep else 0.0
    assert ours == pytest.approx(ref, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(unit, unit, unit), min_size=0, max_size=10))
def test_fronts_are_a_valid_partition(pts):
    fronts = non_dominated_sort(pts, DIRS)
    assert sorted(i for f in fronts for i in f) == list(range(len(pts)))
    for f in fronts:
        # members of one front are mutually non-dominated
        for i, j in itertools.permutations(f, 2):
            assert not dominates(pts[i], pts[j], DIRS)
    for prev, cur in zip(fronts, fronts[1:]):
        # every later point is dominated by some point of the front before it
        for j in cur:
            assert any(dominates(pts[i], pts[j], DIRS) for i in prev)
    # the front alone carries the whole hypervolume
    if fronts:
        assert hypervolume([pts[i] for i in fronts[0]], DIRS) == pytest.approx(hypervolume(pts, DIRS))


def test_docstring_examples():
    result = doctest.testmod(pareto_module)
    assert result.attempted >= 8 and result.failed == 0
