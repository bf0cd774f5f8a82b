"""The knee of a front: the member with the best trade-off between its ends.

The rule (:data:`KNEE_RULE`): over the members that meet the requirements, each objective
is rescaled to a gain in [0, 1] (1 for the best value among them, 0 for the worst; an
objective on which they all agree counts 1 for everyone). The ends of the front are its
best member on each objective; in this normalised space they sit at the unit corners, and
the line between them (the plane, with three or more objectives) is sum(gains) = 1. The
knee is the member farthest beyond that line, at distance (sum(gains) - 1) / sqrt(m): the
one that gives up least on every objective at once. Ties (e.g. a front of two, both ends
at distance 0) go to the first objective, then the trial id.

Example:
    >>> from tune.pareto import Objective
    >>> objs = [Objective("clean_acc", "max"), Objective("robust_acc", "max")]
    >>> points = {"a": {"clean_acc": 0.98, "robust_acc": 0.20},
    ...           "b": {"clean_acc": 0.96, "robust_acc": 0.55},
    ...           "c": {"clean_acc": 0.90, "robust_acc": 0.60}}
    >>> {k: round(v, 3) for k, v in knee_distances(points, objs).items()}
    {'a': 0.0, 'b': 0.442, 'c': 0.0}
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from tune.deploy.requirements import is_number
from tune.objectives import Direction
from tune.pareto import Objective

__all__ = ["KNEE_RULE", "knee_distances"]

KNEE_RULE = ("knee: the member farthest beyond the line between the front's ends, "
             "on objectives rescaled to [0, 1] over the members that meet the requirements "
             "(distance (sum of gains - 1) / sqrt(number of objectives))")


def knee_distances(points: Mapping[str, Mapping[str, Any]],
                   objectives: Sequence[Objective]) -> dict[str, float]:
    """Per key of ``points`` (e.g. a run id), its signed distance beyond the ends' line.

    Points missing an objective value are left out of the result.

    Raises:
        ValueError: no objectives.
    """
    if not objectives:
        raise ValueError("objectives: expected at least one to find a knee on, got none")
    usable = {k: p for k, p in points.items()
              if all(is_number(p.get(o.name)) and math.isfinite(p[o.name]) for o in objectives)}
    if not usable:
        return {}
    gains: dict[str, list[float]] = {k: [] for k in usable}
    for o in objectives:
        sign = 1.0 if o.direction is Direction.MAX else -1.0
        values = {k: sign * float(p[o.name]) for k, p in usable.items()}
        low, high = min(values.values()), max(values.values())
        for k, v in values.items():
            gains[k].append(1.0 if high == low else (v - low) / (high - low))
    root = math.sqrt(len(objectives))
    return {k: (sum(g) - 1.0) / root for k, g in gains.items()}
