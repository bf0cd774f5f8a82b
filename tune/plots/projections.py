"""The 2-D projections of a front of three or more objectives, one plotly panel per pair.

:func:`tune.plots.pareto_html` draws this figure when a sweep has three objectives or more
(e.g. clean accuracy, robust accuracy and synaptic operations): one plane per pair of
objectives, the front over all of them marked in each.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from tune.pareto import Objective
from tune.plots._data import _DOMINATED_COLOUR, _FRONT_COLOUR, _prepare, pairs_of

__all__ = ["pareto_projections_figure"]


def pareto_projections_figure(
    records: Sequence[Mapping[str, Any]],
    objectives: Sequence[Objective],
    *,
    title: str | None = None,
    label_keys: Sequence[str] = (),
):
    """Every 2-D projection of a front of three or more objectives, one panel per pair.

    Each panel shows the pair's plane: ``"dominated"`` (grey), ``"Pareto front"`` (the
    front over *all* objectives, red; a member can sit behind others in one plane and
    ahead in another) and ``"staircase"`` (the front points non-dominated in that plane).
    Trace ``k`` of each kind belongs to panel ``k`` (pairs in order (0, 1), (0, 2), ...).

    Example:
        >>> objs = [Objective("clean_acc", "max"), Objective("robust_acc", "max"),
        ...         Objective("sops", "min", reference=1e6)]
        >>> recs = [{"clean_acc": 0.9, "robust_acc": 0.3, "sops": 4e5},
        ...         {"clean_acc": 0.8, "robust_acc": 0.5, "sops": 5e5}]
        >>> fig = pareto_projections_figure(recs, objs)
        >>> [len(t.x) for t in fig.data if t.name == "Pareto front"]
        [2, 2, 2]
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    objs = tuple(objectives)
    if len(objs) < 3:
        raise ValueError(f"objectives: expected at least 3 to project, got {len(objs)}")
    pairs = pairs_of(len(objs))
    cols = min(3, len(pairs))
    rows = math.ceil(len(pairs) / cols)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.08, vertical_spacing=0.14,
                        subplot_titles=[f"{objs[i].name} vs {objs[j].name}" for i, j in pairs])
    n_front = 0
    for k, pair in enumerate(pairs):
        data = _prepare(records, objs, title, label_keys, pair)
        front, dominated = data.indices(True), data.indices(False)
        n_front = len(front)
        where = {"row": k // cols + 1, "col": k % cols + 1}
        stairs = list(data.staircase)
        fig.add_trace(go.Scatter(
            x=[data.x[i] for i in stairs], y=[data.y[i] for i in stairs], mode="lines",
            name="staircase", legendgroup="staircase", showlegend=k == 0, hoverinfo="skip",
            line={"shape": "vh" if data.vertical_first else "hv", "color": _FRONT_COLOUR,
                  "width": 1.5}), **where)
        fig.add_trace(go.Scatter(
            x=[data.x[i] for i in dominated], y=[data.y[i] for i in dominated],
            mode="markers", name="dominated", legendgroup="dominated", showlegend=k == 0,
            marker={"size": 7, "color": _DOMINATED_COLOUR, "opacity": 0.8},
            text=[data.hover[i] for i in dominated],
            hovertemplate="%{text}<extra>dominated</extra>"), **where)
        fig.add_trace(go.Scatter(
            x=[data.x[i] for i in front], y=[data.y[i] for i in front], mode="markers",
            name="Pareto front", legendgroup="front", showlegend=k == 0,
            marker={"size": 10, "color": _FRONT_COLOUR, "line": {"width": 1, "color": "black"}},
            text=[data.hover[i] for i in front],
            hovertemplate="%{text}<extra>Pareto front</extra>"), **where)
        fig.update_xaxes(title_text=data.objectives[0].label, **where)
        fig.update_yaxes(title_text=data.objectives[1].label, **where)
    fig.update_layout(
        title={"text": title or f"Pareto front: {n_front} of {len(records)} trials"},
        template="plotly_white", height=430 * rows, width=430 * cols + 80,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.06, "x": 0.0},
        margin={"l": 60, "r": 20, "t": 110, "b": 60},
    )
    return fig
