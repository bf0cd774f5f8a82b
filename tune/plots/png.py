"""The static PNG of a sweep's front (matplotlib, Agg canvas, no pyplot)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from tune.pareto import Objective
from tune.plots._data import _DOMINATED_COLOUR, _FRONT_COLOUR, _PlotData, _prepare, pairs_of

__all__ = ["pareto_png"]


def pareto_png(
    records: Sequence[Mapping[str, Any]],
    objectives: Sequence[Objective],
    path: str | Path,
    *,
    title: str | None = None,
    label_keys: Sequence[str] = (),
) -> Path:
    """Write a static Pareto plot (PNG) with matplotlib's Agg backend.

    The figure is drawn on its own Agg canvas (``matplotlib.figure.Figure`` plus
    ``FigureCanvasAgg``), never through ``pyplot``: this needs no display, works in Ray
    workers and threads, and leaves the process-wide backend of a notebook alone.

    Args:
        records, objectives, title: as in :func:`pareto_figure`.
        path: the ``.png`` file to write; missing parent folders are created.
        label_keys: only the first is used, to annotate the front points (e.g. trial ids).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Example:
        >>> pareto_png(records, objectives, run_dir / "pareto.png",
        ...            label_keys=["trial_id"])  # doctest: +SKIP
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    objs = tuple(objectives)
    pairs = pairs_of(len(objs)) if len(objs) >= 3 else [(0, 1)]
    cols = min(3, len(pairs))
    rows = math.ceil(len(pairs) / cols)
    size = (7.0, 5.0) if len(pairs) == 1 else (4.6 * cols, 4.2 * rows + 0.4)
    fig = Figure(figsize=size, dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    for k, pair in enumerate(pairs):
        data = _prepare(records, objs, title, label_keys, pair)
        _draw_panel(fig, fig.add_subplot(rows, cols, k + 1), data, colour_by_third=len(pairs) == 1)
    if len(pairs) > 1:
        fig.suptitle(data.title, fontsize=11)

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def _draw_panel(fig: Any, ax: Any, data: _PlotData, colour_by_third: bool) -> None:
    """One plane of a PNG: dominated points, the front, its staircase, labels."""
    objs = data.objectives
    front, dominated = data.indices(True), data.indices(False)
    fx, fy = [data.x[i] for i in front], [data.y[i] for i in front]
    ax.scatter(
        [data.x[i] for i in dominated],
        [data.y[i] for i in dominated],
        s=28,
        color=_DOMINATED_COLOUR,
        label=f"dominated ({len(dominated)})",
        zorder=2,
    )
    if front:
        sx, sy = [data.x[i] for i in data.staircase], [data.y[i] for i in data.staircase]
        stair_label = f"staircase ({objs[0].name}, {objs[1].name})" if len(objs) > 2 else None
        ax.step(sx, sy, where="pre" if data.vertical_first else "post", color=_FRONT_COLOUR,
                lw=1.3, zorder=3, label=stair_label)
        if data.z is not None and colour_by_third:
            sc = ax.scatter(fx, fy, c=[data.z[i] for i in front], cmap="viridis", s=60,
                            edgecolors="black", linewidths=0.7, zorder=4,
                            label=f"Pareto front ({len(front)})")
            fig.colorbar(sc, ax=ax, label=objs[2].label)
        else:
            ax.scatter(fx, fy, color=_FRONT_COLOUR, s=60, edgecolors="black",
                       linewidths=0.7, zorder=4, label=f"Pareto front ({len(front)})")
        for i in front:
            if data.labels[i]:
                ax.annotate(data.labels[i], (data.x[i], data.y[i]), textcoords="offset points",
                            xytext=(5, 5), fontsize=7)
    ax.set_xlabel(objs[0].label)
    ax.set_ylabel(objs[1].label)
    ax.set_title(data.title if colour_by_third else f"{objs[0].name} vs {objs[1].name}",
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
