"""Pareto-front plots of a sweep: a static PNG (matplotlib) and an interactive HTML (plotly).

Both show the first two objectives as x and y. Points on the Pareto front (computed over
*all* objectives, see :mod:`tune.pareto`) are coloured, dominated points are grey, and a
staircase in order of x bounds the region the front dominates in the (x, y) plane. With
two objectives the staircase passes through every front point; with three or more it
passes through the front points that are also non-dominated in (x, y) (the others are on
the front only thanks to a further objective, and a line through them would zig-zag). A
third objective colours the front points. The hover (HTML) shows each trial's config, the
``label_keys`` fields of its record, and its objective values; the PNG labels front points
with the first label key.

Records missing x or y (or holding NaN there) cannot be placed and are left out of the
plots; records with a missing third objective are drawn grey, as they are never on the front.

Example:
    >>> import tempfile, pathlib
    >>> objs = [Objective("clean_acc", "max"), Objective("robust_acc", "max")]
    >>> recs = [{"trial_id": "t0", "clean_acc": 0.9, "robust_acc": 0.2},
    ...         {"trial_id": "t1", "clean_acc": 0.7, "robust_acc": 0.5},
    ...         {"trial_id": "t2", "clean_acc": 0.6, "robust_acc": 0.4}]
    >>> fig = pareto_figure(recs, objs, label_keys=["trial_id"])
    >>> {t.name: len(t.x) for t in fig.data}  # front: t0, t1; dominated: t2
    {'staircase': 2, 'dominated': 1, 'Pareto front': 2}
    >>> out = pareto_html(recs, objs, pathlib.Path(tempfile.mkdtemp()) / "front.html")
    >>> out.suffix
    '.html'
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from tune.objectives import Direction
from tune.pareto import Objective, non_dominated_sort, pareto_ranks

__all__ = ["pareto_figure", "pareto_html", "pareto_png"]

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
) -> _PlotData:
    objs = tuple(objectives)
    if len(objs) < 2:
        raise ValueError(f"objectives: expected at least 2 to plot, got {len(objs)}")
    if isinstance(label_keys, str):
        raise ValueError(f"label_keys: expected a sequence of field names, got {label_keys!r}")
    ranks = pareto_ranks(records, objs)
    rows = []
    for rec, rank in zip(records, ranks):
        x, y = _number(rec.get(objs[0].name)), _number(rec.get(objs[1].name))
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
    fronts_2d = non_dominated_sort([(r[1], r[2]) for r in rows[:n_front]], objs[:2])
    staircase = tuple(fronts_2d[0]) if fronts_2d else ()  # rows are sorted by x already
    if title is None:
        title = f"Pareto front: {n_front} of {len(records)} trials"
    return _PlotData(
        objectives=objs,
        x=tuple(r[1] for r in rows),
        y=tuple(r[2] for r in rows),
        z=tuple(r[3] for r in rows) if len(objs) > 2 else None,
        on_front=tuple(not r[0] for r in rows),
        staircase=staircase,
        hover=tuple(r[4] for r in rows),
        labels=tuple(r[5] for r in rows),
        title=title,
    )


def pareto_figure(
    records: Sequence[Mapping[str, Any]],
    objectives: Sequence[Objective],
    *,
    title: str | None = None,
    label_keys: Sequence[str] = (),
):
    """Build the interactive plotly figure behind :func:`pareto_html`.

    Traces, in drawing order (look them up by name): ``"staircase"`` (the line bounding
    what the front dominates in the (x, y) plane, in legend only with 3+ objectives),
    ``"dominated"`` (grey markers) and ``"Pareto front"`` (markers, coloured by the third
    objective if any). Each point's hover text lists the ``label_keys`` fields of its
    record and its objective values.

    Args:
        records: one dict per trial holding the objective names (and the label keys).
        objectives: at least two; the first is x, the second y, the third the colour.
        title: figure title; by default says how many trials are on the front.
        label_keys: record fields shown in the hover, e.g. ``("trial_id", "margin_weight")``.

    Returns:
        A ``plotly.graph_objects.Figure``.

    Example:
        >>> objs = [Objective("robust_acc", "max"), Objective("spike_rate", "min")]
        >>> fig = pareto_figure([{"robust_acc": 0.5, "spike_rate": 0.2}], objs)
        >>> [t.name for t in fig.data]
        ['staircase', 'dominated', 'Pareto front']
    """
    import plotly.graph_objects as go

    data = _prepare(records, objectives, title, label_keys)
    objs = data.objectives
    front, dominated = data.indices(True), data.indices(False)

    marker: dict[str, Any] = {
        "size": 10, "color": _FRONT_COLOUR, "line": {"width": 1, "color": "black"}
    }
    if data.z is not None:
        marker.update(
            color=[data.z[i] for i in front],
            colorscale=_COLOURSCALE,
            showscale=True,
            colorbar={"title": {"text": objs[2].label}},
        )
    stairs = list(data.staircase)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[data.x[i] for i in stairs],
            y=[data.y[i] for i in stairs],
            mode="lines",
            name="staircase",
            showlegend=len(objs) > 2,
            line={
                "shape": "vh" if data.vertical_first else "hv",
                "color": _FRONT_COLOUR,
                "width": 1.5,
            },
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[data.x[i] for i in dominated],
            y=[data.y[i] for i in dominated],
            mode="markers",
            name="dominated",
            marker={"size": 7, "color": _DOMINATED_COLOUR, "opacity": 0.8},
            text=[data.hover[i] for i in dominated],
            hovertemplate="%{text}<extra>dominated</extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[data.x[i] for i in front],
            y=[data.y[i] for i in front],
            mode="markers",
            name="Pareto front",
            marker=marker,
            text=[data.hover[i] for i in front],
            hovertemplate="%{text}<extra>Pareto front</extra>",
        )
    )
    fig.update_layout(
        title={"text": data.title},
        xaxis_title=objs[0].label,
        yaxis_title=objs[1].label,
        template="plotly_white",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0.0},
        margin={"l": 60, "r": 20, "t": 80, "b": 60},
    )
    return fig


def pareto_html(
    records: Sequence[Mapping[str, Any]],
    objectives: Sequence[Objective],
    path: str | Path,
    *,
    title: str | None = None,
    label_keys: Sequence[str] = (),
) -> Path:
    """Write the interactive Pareto plot as a small standalone HTML page.

    The page loads plotly.js from its CDN (``include_plotlyjs="cdn"``), which keeps the
    file a few kB instead of ~4 MB, so it can be logged as an MLflow artifact for every
    sweep; the price is that the page needs the CDN (internet access in the browser) to
    render. The MLflow UI's artifact viewer shows HTML in an iframe, where this works.

    Args:
        records, objectives, title, label_keys: as in :func:`pareto_figure`.
        path: the ``.html`` file to write; missing parent folders are created.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Example:
        >>> pareto_html(records, objectives, run_dir / "pareto.html",
        ...             label_keys=["trial_id", "margin_weight"])  # doctest: +SKIP
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = pareto_figure(records, objectives, title=title, label_keys=label_keys)
    fig.write_html(out, include_plotlyjs="cdn", full_html=True)
    return out


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

    data = _prepare(records, objectives, title, label_keys)
    objs = data.objectives
    front, dominated = data.indices(True), data.indices(False)
    fx, fy = [data.x[i] for i in front], [data.y[i] for i in front]

    fig = Figure(figsize=(7.0, 5.0), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
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
        if data.z is not None:
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
    ax.set_title(data.title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
