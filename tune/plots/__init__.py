"""Pareto-front plots of a sweep: a static PNG (matplotlib) and an interactive HTML (plotly).

With two objectives both show them as x and y; with three or more, both show every 2-D
projection, one panel per pair, the front (over all objectives) in red in each.
:func:`pareto_figure` is the single plane of the first two objectives. Points on the Pareto front (computed over
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


from tune.pareto import Objective  # noqa: F401 (the examples above use it)
from tune.plots._data import pairs_of
from tune.plots.figure import pareto_figure, pareto_html
from tune.plots.png import pareto_png
from tune.plots.projections import pareto_projections_figure

__all__ = ["pairs_of", "pareto_figure", "pareto_html", "pareto_png", "pareto_projections_figure"]
