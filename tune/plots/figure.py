"""The interactive plotly figures and the standalone HTML page of a sweep's front."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from tune.pareto import Objective
from tune.plots._data import _COLOURSCALE, _DOMINATED_COLOUR, _FRONT_COLOUR, _prepare
from tune.plots.projections import pareto_projections_figure

__all__ = ["pareto_figure", "pareto_html"]


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
    """Write the interactive Pareto plot as a standalone HTML page that needs no network.

    plotly.js (about 4.6 MB) is written into the page (``include_plotlyjs=True``): a
    cluster or a laptop without internet still draws it, and the MLflow UI shows it in
    its sandboxed frame. A sweep keeps one such page, the parent run's ``pareto.html``,
    replaced as the front changes, so one copy of plotly.js per sweep. With two
    objectives it is :func:`pareto_figure`; with three or more, every 2-D projection
    (:func:`tune.plots.projections.pareto_projections_figure`).

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
    make = pareto_projections_figure if len(objectives) >= 3 else pareto_figure
    fig = make(records, objectives, title=title, label_keys=label_keys)
    fig.write_html(out, include_plotlyjs=True, full_html=True)
    return out
