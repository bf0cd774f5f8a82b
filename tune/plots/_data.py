"""What every Pareto plot draws: the records placed in one plane of two objectives."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

from tune.objectives import Direction
from tune.pareto import Objective, non_dominated_sort, pareto_ranks

_FRONT_COLOUR = "#d62728"
_DOMINATED_COLOUR = "#b0b0b0"
_COLOURSCALE = "Viridis"


@dataclasses.dataclass(frozen=True)
class _PlotData:
    """What both backends draw: one entry per plottable record, front first in x order."""

    objectives: tuple[Objective, ...]
    x: tuple[float, ...]
    y: tuple[float, ...]
    z: tuple[float, ...] | None  # third objective, None with two objectives
    on_front: tuple[bool, ...]
    staircase: tuple[int, ...]  # front points non-dominated in (x, y), in increasing x
    hover: tuple[str, ...]
    labels: tuple[str, ...]
    title: str

    def indices(self, front: bool) -> list[int]:
        return [i for i, f in enumerate(self.on_front) if f == front]

    @property
    def vertical_first(self) -> bool:
        """Staircase corner of the dominated region, with the front sorted by increasing x.

        With x maximised the region a point dominates lies left of it, so from one front
        point the boundary first runs vertically, then horizontally to the next; with x
        minimised it runs horizontally first.
        """
        return self.objectives[0].direction is Direction.MAX


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _prepare(
    records: Sequence[Mapping[str, Any]],
    objectives: Sequence[Objective],
    title: str | None,
    label_keys: Sequence[str],
    pair: tuple[int, int] = (0, 1),
) -> _PlotData:
    """The records placed in the plane of objectives ``pair`` (x, y); the front is over all
    objectives, the staircase over the pair."""
    objs = tuple(objectives)
    if len(objs) < 2:
        raise ValueError(f"objectives: expected at least 2 to plot, got {len(objs)}")
    if isinstance(label_keys, str):
        raise ValueError(f"label_keys: expected a sequence of field names, got {label_keys!r}")
    ranks = pareto_ranks(records, objs)
    ox, oy = objs[pair[0]], objs[pair[1]]
    rows = []
    for rec, rank in zip(records, ranks):
        x, y = _number(rec.get(ox.name)), _number(rec.get(oy.name))
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        z = _number(rec.get(objs[2].name)) if len(objs) > 2 else None
        lines = [f"{k}: {_fmt(rec[k])}" for k in label_keys if k in rec]
        lines += [f"{o.label}: {_fmt(rec.get(o.name, 'missing'))}" for o in objs]
        label = _fmt(rec[label_keys[0]]) if label_keys and label_keys[0] in rec else ""
        rows.append((rank != 0, x, y, z, "<br>".join(lines), label))
    # front first, each group in increasing x (the order the front line is drawn in)
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    n_front = sum(1 for r in rows if not r[0])
    fronts_2d = non_dominated_sort([(r[1], r[2]) for r in rows[:n_front]], (ox, oy))
    staircase = tuple(fronts_2d[0]) if fronts_2d else ()  # rows are sorted by x already
    if title is None:
        title = f"Pareto front: {n_front} of {len(records)} trials"
    return _PlotData(
        objectives=(ox, oy, *(o for i, o in enumerate(objs) if i not in pair)),
        x=tuple(r[1] for r in rows),
        y=tuple(r[2] for r in rows),
        z=tuple(r[3] for r in rows) if len(objs) > 2 else None,
        on_front=tuple(not r[0] for r in rows),
        staircase=staircase,
        hover=tuple(r[4] for r in rows),
        labels=tuple(r[5] for r in rows),
        title=title,
    )



def pairs_of(n: int) -> list[tuple[int, int]]:
    """The planes of ``n`` objectives, in order: (0, 1), (0, 2), ..., (n - 2, n - 1)."""
    return [(i, j) for i in range(n) for j in range(i + 1, n)]
