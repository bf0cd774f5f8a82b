"""The plain O(n^2) definitions of non-dominated sorting, crowding, the 2-D hypervolume and
MO-ASHA's rung survivors: what ``tune.pareto`` and ``tune.search.mo_asha`` computed before
they moved to moocore and numpy (issue 14). Tests compare the fast versions against these.
"""

from __future__ import annotations

import math
from typing import Sequence

from optuna.study import StudyDirection

from tune.pareto import Objective, _check_objectives, _dominates_gains, _gains, _values
from optuna.trial import TrialState

from tune.search.mo_asha import MOASHAPruner, TieBreak, _objectives, decision_key
from tune.search.rung_book import step_values as _step_values
from tgo.config import as_enum

Point = object


def non_dominated_sort(points: Sequence[Point], objectives: Sequence[Objective]) -> list[list[int]]:
    """Split points into Pareto fronts (NSGA-II fast non-dominated sort, O(m n^2)).

    Returns:
        Fronts of indices into ``points``, front 0 (the Pareto front) first, each in
        ascending index order. Invalid points form one extra final front; if no point is
        valid, front 0 is empty and the invalid points are front 1, so front 0 only ever
        holds valid points. An empty input gives ``[]``.

    Example:
        >>> objs = [Objective("a", "max"), Objective("b", "max")]
        >>> non_dominated_sort([[1, 0], [0, 1], [0, 0], [float("nan"), 1]], objs)
        [[0, 1], [2], [3]]
    """
    objs = _check_objectives(objectives)
    gains = [_gains(p, objs) for p in points]
    valid = [i for i, g in enumerate(gains) if g is not None]
    invalid = [i for i, g in enumerate(gains) if g is None]

    dominated_by_count = {i: 0 for i in valid}
    dominates_list: dict[int, list[int]] = {i: [] for i in valid}
    for k, i in enumerate(valid):
        for j in valid[k + 1 :]:
            if _dominates_gains(gains[i], gains[j]):
                dominates_list[i].append(j)
                dominated_by_count[j] += 1
            elif _dominates_gains(gains[j], gains[i]):
                dominates_list[j].append(i)
                dominated_by_count[i] += 1

    fronts: list[list[int]] = []
    current = [i for i in valid if dominated_by_count[i] == 0]
    while current:
        fronts.append(sorted(current))
        nxt = []
        for i in current:
            for j in dominates_list[i]:
                dominated_by_count[j] -= 1
                if dominated_by_count[j] == 0:
                    nxt.append(j)
        current = nxt
    if invalid:
        if not fronts:
            fronts.append([])
        fronts.append(invalid)
    return fronts


def crowding_distance(points: Sequence[Point], objectives: Sequence[Objective]) -> list[float]:
    """NSGA-II crowding distance of each point within ``points`` (normally one front).

    For each objective the points are sorted by value; the two extremes get ``inf`` and
    every other point adds ``(next - previous) / (max - min)``. An objective on which all
    points agree adds 0. With two or fewer valid points all get ``inf``. Invalid points get
    0.0 (least preferred) and are left out of the neighbours of valid ones.

    Example:
        >>> objs = [Objective("a", "max"), Objective("b", "max")]
        >>> crowding_distance([[0, 1], [0.5, 0.5], [1, 0]], objs)
        [inf, 2.0, inf]
    """
    objs = _check_objectives(objectives)
    values = [_values(p, objs) for p in points]
    valid = [i for i, v in enumerate(values) if all(math.isfinite(x) for x in v)]
    dist = [0.0] * len(values)
    if len(valid) <= 2:
        for i in valid:
            dist[i] = math.inf
        return dist
    for m in range(len(objs)):
        order = sorted(valid, key=lambda i: (values[i][m], i))
        lo, hi = values[order[0]][m], values[order[-1]][m]
        dist[order[0]] = dist[order[-1]] = math.inf
        span = hi - lo
        if span <= 0:
            continue
        for k in range(1, len(order) - 1):
            dist[order[k]] += (values[order[k + 1]][m] - values[order[k - 1]][m]) / span
    return dist


def hypervolume(points: Sequence[Point], objectives: Sequence[Objective]) -> float:
    """Volume of objective space dominated by ``points`` and bounded by the reference point.

    The reference is each objective's ``reference``. Only points that strictly improve on
    the reference in every objective contribute; invalid points are ignored. Dominated
    points add nothing (they lie inside the volume of the points that dominate them).

    One and two objectives are computed exactly here (2-D: sort by the first gain,
    descending, and add the slab each point adds above the best second gain so far). For
    three or more objectives the gains are turned into a minimisation problem with the
    reference at the origin and handed to :func:`moocore.hypervolume`: exact algorithms
    beyond 2-D (HV3D+, HV4D+, WFG-style recursion) are subtle to get right with ties and
    weakly dominated points, and moocore is a maintained, tested C implementation of them.

    Example:
        >>> objs = [Objective("a", "max"), Objective("b", "max")]
        >>> round(hypervolume([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]], objs), 6)
        0.35
    """
    objs = _check_objectives(objectives)
    gains = [g for g in (_gains(p, objs) for p in points) if g is not None and min(g) > 0]
    if not gains:
        return 0.0
    if len(objs) == 1:
        return max(g[0] for g in gains)
    if len(objs) == 2:
        volume, best_second = 0.0, 0.0
        for first, second in sorted(gains, key=lambda g: (-g[0], -g[1])):
            if second > best_second:
                volume += first * (second - best_second)
                best_second = second
        return volume

    raise NotImplementedError("the reference covers one and two objectives")


def _epsilon_net_order(
    points: Sequence[Sequence[float]],
    idx: Sequence[int],
    objectives: Sequence[Objective],
    scale: Sequence[tuple[float, float]],
) -> list[int]:
    """Greedy farthest-point order of ``idx``: start at the best on the first objective."""
    def norm(i: int) -> list[float]:
        return [(points[i][m] - lo) / (hi - lo) if hi > lo else 0.0
                for m, (lo, hi) in enumerate(scale)]

    first_max = objectives[0].direction == "max"
    remaining = sorted(idx, key=lambda i: ((-1 if first_max else 1) * points[i][0], i))
    order = [remaining.pop(0)]
    while remaining:
        def gap(i: int) -> float:
            return min(math.dist(norm(i), norm(j)) for j in order)
        best = max(remaining, key=lambda i: (gap(i), -i))
        remaining.remove(best)
        order.append(best)
    return order


def select_survivors(
    points: Sequence[Sequence[float]],
    directions: Sequence[StudyDirection],
    keep: int,
    tie_break: TieBreak | str = TieBreak.CROWDING,
) -> set[int]:
    """Indices of the ``keep`` points that survive a rung (lower index wins exact ties).

    Points with a NaN or infinite value rank behind every valid point.

    Example:
        >>> up = [StudyDirection.MAXIMIZE, StudyDirection.MAXIMIZE]
        >>> sorted(select_survivors([[1, 0], [0, 1], [0.5, 0.5], [0, 0]], up, keep=3))
        [0, 1, 2]
    """
    tie_break = as_enum(TieBreak, tie_break, "tie_break")
    objectives = _objectives(directions)
    kept: list[int] = []
    for front in non_dominated_sort(points, objectives):
        room = keep - len(kept)
        if room <= 0:
            break
        if len(front) <= room:
            kept.extend(front)
            continue
        if tie_break is TieBreak.CROWDING:
            dist = crowding_distance([points[i] for i in front], objectives)
            order = [i for _, i in sorted(zip(dist, front), key=lambda p: (-p[0], p[1]))]
        else:
            valid = [i for i in range(len(points)) if all(math.isfinite(v) for v in points[i])]
            scale = [(min(points[i][m] for i in valid), max(points[i][m] for i in valid))
                     for m in range(len(objectives))] if valid else []
            good = [i for i in front if i in valid]
            order = (_epsilon_net_order(points, good, objectives, scale) if good else []) + [
                i for i in front if i not in valid]
        kept.extend(order[:room])
    return set(kept)


def _value_at_rung(steps, rung_step):
    reached = [s for s in steps if s >= rung_step]
    if not reached:
        return None
    first = min(reached)
    return first, steps[first]


class FullRereadMOASHA(MOASHAPruner):
    """MO-ASHA as it decided before issue 14: every decision re-reads every trial of the
    study, re-parses its values and sorts the whole rung in pure Python."""

    def prune(self, study, trial) -> bool:
        steps = _step_values(trial)
        if not steps:
            return False
        last = max(steps)
        others = None
        for rung, rung_step in enumerate(self.rung_steps(last)):
            own = _value_at_rung(steps, rung_step)
            if own is None or own[0] != last:
                continue
            if others is None:
                others = [t for t in study.get_trials(deepcopy=False)
                          if t.number != trial.number and t.state != TrialState.FAIL]
            peers = [_value_at_rung(_step_values(t), rung_step) for t in others]
            points = [p[1] for p in peers if p is not None] + [own[1]]
            n = len(points)
            if n < self.min_trials_at_rung:
                continue
            keep = max(1, math.ceil(n / self.reduction_factor))
            pruned = (n - 1) not in select_survivors(points, study.directions, keep,
                                                     self.tie_break)
            record = {"step": last, "rung_step": rung_step, "n": n, "keep": keep,
                      "pruned": pruned}
            study._storage.set_trial_system_attr(trial._trial_id, decision_key(rung), record)
            if pruned:
                return True
        return False
