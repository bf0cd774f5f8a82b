"""Pareto logic on plain records: dominance, non-dominated sorting, crowding, hypervolume.

Everything here is a pure function of numbers and dicts (no Ray, MLflow or torch), so it
is tested on made-up points and reused by the sweep driver, the MLflow logger and the plots.
Ranking, non-dominance and hypervolume are moocore's C routines (O(n log n) for two
objectives; ``benchmarks/scale.py`` measures them at 10,000 trials); the tests check them
against the plain O(n^2) definitions in ``tests/pareto_reference.py``.

A *point* is either a sequence of values in the order of ``objectives`` or a mapping keyed
by objective name (a trial's result dict works as is). A point with a missing, ``None``,
NaN or infinite value is *invalid*: it dominates nothing, is ranked after every valid point
(in its own final front), never appears on front 0 and adds nothing to the hypervolume. An
infinite accuracy or spike rate only comes from a broken trial, which must not win.

Example:
    >>> objs = [Objective("robust_acc", "max"), Objective("spike_rate", "min")]
    >>> recs = [{"robust_acc": 0.5, "spike_rate": 0.2}, {"robust_acc": 0.4, "spike_rate": 0.3},
    ...         {"robust_acc": 0.6, "spike_rate": 0.4}]
    >>> pareto_ranks(recs, objs)
    [0, 1, 0]
    >>> round(hypervolume(recs, objs), 4)   # (0.6 - 0) * (1 - 0.4) + (0.5 - 0) * (0.4 - 0.2)
    0.46
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

from tgo.config import as_enum
from tune.objectives import Direction

__all__ = [
    "Objective",
    "crowding_distance",
    "dominates",
    "hypervolume",
    "non_dominated_sort",
    "pareto_front",
    "pareto_ranks",
    "rank_rows",
    "crowding_rows",
]

Point = Sequence[Any] | Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Objective:
    """One objective of a multi-objective sweep.

    Attributes:
        name: the result key holding the objective (e.g. ``"robust_acc"``).
        direction: ``"max"`` or ``"min"`` (stored as :class:`Direction`).
        reference: the hypervolume reference coordinate. ``None`` picks 0.0 for ``max`` and
            1.0 for ``min``, the worst values of an accuracy or rate in [0, 1].

    Example:
        >>> Objective("spike_rate", "min").reference
        1.0
    """

    name: str
    direction: Direction | str = Direction.MAX
    reference: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Objective.name: expected a non-empty string, got {self.name!r}")
        # A str-valued enum (e.g. tune.objectives.Metric) prints as "Metric.X": keep its value.
        object.__setattr__(self, "name", str(getattr(self.name, "value", self.name)))
        direction = as_enum(Direction, self.direction, "Objective.direction")
        object.__setattr__(self, "direction", direction)
        ref = self.reference
        if ref is None:
            ref = 0.0 if direction is Direction.MAX else 1.0
        if isinstance(ref, bool) or not isinstance(ref, (int, float)) or not math.isfinite(ref):
            raise ValueError(
                f"Objective.reference: expected a finite number or None, got {self.reference!r}"
            )
        object.__setattr__(self, "reference", float(ref))

    @property
    def label(self) -> str:
        """Axis label such as ``"robust_acc (max)"``."""
        return f"{self.name} ({self.direction.value})"

    def gain(self, value: float) -> float:
        """How far ``value`` improves on the reference (positive = better than reference)."""
        if self.direction is Direction.MAX:
            return value - self.reference
        return self.reference - value


# ----------------------------------------------------------------------------- helpers


def _check_objectives(objectives: Sequence[Objective]) -> tuple[Objective, ...]:
    objs = tuple(objectives)
    if not objs:
        raise ValueError("objectives: expected at least one Objective, got none")
    for obj in objs:
        if not isinstance(obj, Objective):
            raise ValueError(f"objectives: expected Objective instances, got {obj!r}")
    names = [o.name for o in objs]
    if len(set(names)) != len(names):
        raise ValueError(f"objectives: expected unique names, got {names}")
    return objs


def _to_float(value: Any, name: str) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {value!r}") from None


def _values(point: Point, objs: tuple[Objective, ...]) -> tuple[float, ...]:
    """The point's raw values in objective order (missing -> NaN)."""
    if isinstance(point, Mapping):
        return tuple(_to_float(point.get(o.name), o.name) for o in objs)
    if isinstance(point, (str, bytes)) or not isinstance(point, Sequence):
        raise ValueError(f"point: expected a sequence or a mapping of values, got {point!r}")
    if len(point) != len(objs):
        raise ValueError(
            f"point: expected {len(objs)} values (one per objective), got {len(point)}: {point!r}"
        )
    return tuple(_to_float(v, o.name) for v, o in zip(point, objs))


def _gains(point: Point, objs: tuple[Objective, ...]) -> tuple[float, ...] | None:
    """Values turned into 'larger is better' gains over the reference; None if invalid."""
    vals = _values(point, objs)
    if not all(math.isfinite(v) for v in vals):
        return None
    return tuple(o.gain(v) for v, o in zip(vals, objs))


def _dominates_gains(a: Sequence[float], b: Sequence[float]) -> bool:
    better = False
    for x, y in zip(a, b):
        if x < y:
            return False
        if x > y:
            better = True
    return better


# ----------------------------------------------------------------------------- public API


def dominates(a: Point, b: Point, objectives: Sequence[Objective]) -> bool:
    """True when ``a`` is at least as good as ``b`` in every objective and better in one.

    Equal points do not dominate each other. An invalid point (missing / NaN / inf value)
    neither dominates nor is dominated; :func:`non_dominated_sort` ranks it last instead.

    Args:
        a, b: values in ``objectives`` order, or mappings keyed by objective name.
        objectives: the objectives and their directions.

    Example:
        >>> objs = [Objective("clean_acc", "max"), Objective("spike_rate", "min")]
        >>> dominates([0.9, 0.1], [0.8, 0.1], objs), dominates([0.9, 0.1], [0.9, 0.1], objs)
        (True, False)
    """
    objs = _check_objectives(objectives)
    ga, gb = _gains(a, objs), _gains(b, objs)
    if ga is None or gb is None:
        return False
    return _dominates_gains(ga, gb)


def _gain_array(points: Sequence[Point], objs: tuple[Objective, ...]):
    """(n x m array of gains, boolean mask of the valid rows)."""
    gains, valid = _raw_array(points, objs)
    for m, obj in enumerate(objs):
        gains[:, m] = obj.gain(gains[:, m])   # NaN and inf stay non-finite
    return gains, valid


def rank_rows(gains, valid) -> "Any":
    """Pareto rank of each row of ``gains`` (larger is better), with invalid rows last.

    Valid rows are ranked by :func:`moocore.pareto_rank` (O(n log n) for two objectives,
    equal rows share a rank); invalid rows get one rank past the last valid one. Used by
    :func:`non_dominated_sort` and by MO-ASHA's rung decisions.
    """
    import numpy as np

    ranks = np.zeros(len(valid), dtype=np.int64)
    if valid.any():
        good = gains[valid]
        if good.shape[1] == 1:   # one objective: rank = index among distinct values
            ranks[valid] = np.unique(-good[:, 0], return_inverse=True)[1].ravel()
        else:
            import moocore

            ranks[valid] = moocore.pareto_rank(good, maximise=True)
        ranks[~valid] = ranks[valid].max() + 1
    else:
        ranks[:] = 1   # front 0 only ever holds valid points
    return ranks


def non_dominated_sort(points: Sequence[Point], objectives: Sequence[Objective]) -> list[list[int]]:
    """Split points into Pareto fronts (:func:`moocore.pareto_rank`, O(n log n) in 2-D).

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
    import numpy as np

    objs = _check_objectives(objectives)
    if not len(points):
        return []
    ranks = rank_rows(*_gain_array(points, objs))
    order = np.lexsort((np.arange(len(ranks)), ranks))
    bounds = np.searchsorted(ranks[order], np.arange(ranks.max() + 2))
    return [order[a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:])]


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
    if not len(points):
        return []
    return crowding_rows(*_raw_array(points, objs)).tolist()


def _raw_array(points: Sequence[Point], objs: tuple[Objective, ...]):
    import numpy as np

    values = np.array([_values(p, objs) for p in points], dtype=float).reshape(len(points),
                                                                               len(objs))
    return values, np.isfinite(values).all(axis=1)


def crowding_rows(values, valid) -> "Any":
    """:func:`crowding_distance` on an (n x m) array of values and its valid-row mask."""
    import numpy as np

    dist = np.zeros(len(valid))
    idx = np.flatnonzero(valid)
    if len(idx) <= 2:
        dist[idx] = math.inf
        return dist
    for m in range(values.shape[1]):
        col = values[idx, m]
        order = idx[np.lexsort((idx, col))]   # by value, ties by index
        lo, hi = values[order[0], m], values[order[-1], m]
        dist[order[0]] = dist[order[-1]] = math.inf
        span = hi - lo
        if span <= 0:
            continue
        dist[order[1:-1]] += (values[order[2:], m] - values[order[:-2], m]) / span
    return dist


def hypervolume(points: Sequence[Point], objectives: Sequence[Objective]) -> float:
    """Volume of objective space dominated by ``points`` and bounded by the reference point.

    The reference is each objective's ``reference``. Only points that strictly improve on
    the reference in every objective contribute; invalid points are ignored. Dominated
    points add nothing (they lie inside the volume of the points that dominate them).

    With two or more objectives the gains are turned into a minimisation problem with the
    reference at the origin and handed to :func:`moocore.hypervolume` (O(n log n) in 2-D
    and 3-D; HV4D+ and WFG-style recursion beyond): exact algorithms are subtle to get
    right with ties and weakly dominated points, and moocore is a maintained, tested C
    implementation of them.

    Example:
        >>> objs = [Objective("a", "max"), Objective("b", "max")]
        >>> round(hypervolume([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]], objs), 6)
        0.35
    """
    import numpy as np

    objs = _check_objectives(objectives)
    if not len(points):
        return 0.0
    gains, valid = _gain_array(points, objs)
    gains = gains[valid & (gains > 0).all(axis=1)]
    if not len(gains):
        return 0.0
    if len(objs) == 1:
        return float(gains[:, 0].max())

    import moocore

    return float(moocore.hypervolume(-gains, ref=np.zeros(len(objs))))


def pareto_ranks(
    records: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]
) -> list[int]:
    """Front index of each record (0 = Pareto front), as given by :func:`non_dominated_sort`.

    Records lacking an objective or holding NaN get the last rank (never 0).

    Example:
        >>> objs = [Objective("clean_acc", "max")]
        >>> pareto_ranks([{"clean_acc": 0.5}, {"clean_acc": 0.9}, {}], objs)
        [1, 0, 2]
    """
    objs = _check_objectives(objectives)
    return rank_rows(*_gain_array(records, objs)).tolist() if len(records) else []


def pareto_front(
    records: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]
) -> list[dict[str, Any]]:
    """The records on the Pareto front (rank 0), in input order.

    The returned items are the input records themselves (not copies).

    Example:
        >>> objs = [Objective("robust_acc", "max"), Objective("spike_rate", "min")]
        >>> recs = [{"trial_id": "a", "robust_acc": 0.5, "spike_rate": 0.2},
        ...         {"trial_id": "b", "robust_acc": 0.4, "spike_rate": 0.3}]
        >>> [r["trial_id"] for r in pareto_front(recs, objs)]
        ['a']
    """
    import numpy as np

    objs = _check_objectives(objectives)
    if not len(records):
        return []
    gains, valid = _gain_array(records, objs)
    idx = np.flatnonzero(valid)
    if not len(idx):
        return []
    if len(objs) == 1:
        keep = gains[idx, 0] == gains[idx, 0].max()
    else:
        import moocore

        keep = moocore.is_nondominated(gains[idx], maximise=True, keep_weakly=True)
    return [records[i] for i in idx[keep]]
