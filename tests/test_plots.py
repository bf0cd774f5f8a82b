"""Pareto plots: files are written, small, and mark front vs dominated points correctly."""

from __future__ import annotations

import doctest
import math
import random

import pytest

import tune.plots as plots_module
from tune.pareto import Objective, pareto_front
from tune.plots import pareto_figure, pareto_html, pareto_png
from tune.plots import pareto_projections_figure

TWO = [Objective("robust_acc", "max"), Objective("clean_acc", "max")]
THREE = TWO + [Objective("spike_rate", "min")]
LABELS = ("trial_id", "margin_weight", "margin", "noise_scale", "timesteps")


def _traces(fig) -> dict:
    names = [t.name for t in fig.data]
    assert names == ["staircase", "dominated", "Pareto front"]
    return {t.name: t for t in fig.data}


def _records(n: int = 24, seed: int = 0) -> list[dict]:
    """Made-up sweep results with a robustness/accuracy trade-off plus noise."""
    rng = random.Random(seed)
    recs = []
    for k in range(n):
        lam = rng.uniform(0.0, 2.0)
        sigma = rng.uniform(0.0, 0.5)
        robust = min(0.95, 0.1 + 0.25 * lam + 0.3 * sigma + rng.uniform(-0.1, 0.1))
        recs.append(
            {
                "trial_id": f"trial_{k:03d}",
                "margin_weight": round(lam, 3),
                "margin": round(rng.uniform(0.05, 0.5), 3),
                "noise_scale": round(sigma, 3),
                "timesteps": rng.choice([2, 4, 8]),
                "robust_acc": robust,
                "clean_acc": 0.98 - 0.3 * robust + rng.uniform(-0.05, 0.05),
                "spike_rate": rng.uniform(0.05, 0.3),
            }
        )
    return recs


# hand-made: t0, t1, t3 form the 2-D front, t2 is dominated by t1, t4 lacks clean_acc
SMALL = [
    {"trial_id": "t0", "robust_acc": 0.20, "clean_acc": 0.90, "spike_rate": 0.30, "margin_weight": 0.0},
    {"trial_id": "t1", "robust_acc": 0.50, "clean_acc": 0.70, "spike_rate": 0.20, "margin_weight": 0.5},
    {"trial_id": "t2", "robust_acc": 0.40, "clean_acc": 0.60, "spike_rate": 0.10, "margin_weight": 1.0},
    {"trial_id": "t3", "robust_acc": 0.70, "clean_acc": 0.40, "spike_rate": 0.25, "margin_weight": 2.0},
    {"trial_id": "t4", "robust_acc": 0.99, "spike_rate": 0.01},
]


def test_figure_two_objectives_marks_front_and_dominated():
    fig = pareto_figure(SMALL, TWO, label_keys=("trial_id", "margin_weight"))
    traces = _traces(fig)
    front, dominated, stairs = traces["Pareto front"], traces["dominated"], traces["staircase"]
    # t4 cannot be placed (no clean_acc): 3 on the front, 1 dominated
    assert list(front.x) == [0.2, 0.5, 0.7]
    assert list(front.y) == [0.9, 0.7, 0.4]
    assert list(dominated.x) == [0.4] and list(dominated.y) == [0.6]
    # two objectives: the staircase runs through every front point in increasing x;
    # x maximised, so the dominated-region boundary runs vertically first
    assert list(stairs.x) == [0.2, 0.5, 0.7] and list(stairs.y) == [0.9, 0.7, 0.4]
    assert stairs.line.shape == "vh" and stairs.mode == "lines" and not stairs.showlegend
    assert front.mode == "markers" and dominated.mode == "markers"
    assert "t1" in front.text[1] and "margin_weight: 0.5" in front.text[1]
    assert "robust_acc (max): 0.5" in front.text[1]
    assert "t2" in dominated.text[0]
    assert fig.layout.xaxis.title.text == "robust_acc (max)"
    assert fig.layout.yaxis.title.text == "clean_acc (max)"
    assert "3 of 5" in fig.layout.title.text


def test_figure_step_follows_x_direction():
    objs = [Objective("spike_rate", "min"), Objective("robust_acc", "max")]
    fig = pareto_figure(SMALL, objs)
    assert _traces(fig)["staircase"].line.shape == "hv"


def test_figure_three_objectives_colours_front_by_third():
    fig = pareto_figure(SMALL, THREE, label_keys=("trial_id",))
    traces = _traces(fig)
    front, dominated, stairs = traces["Pareto front"], traces["dominated"], traces["staircase"]
    # over three objectives t2 has the lowest spike rate, so all four placeable are on the front
    assert len(front.x) == 4 and len(dominated.x) == 0
    assert list(front.marker.color) == [0.30, 0.10, 0.20, 0.25]  # t0, t2, t1, t3 by x
    assert front.marker.colorbar.title.text == "spike_rate (min)"
    # the staircase skips t2, which is dominated by t1 in (robust_acc, clean_acc)
    assert list(stairs.x) == [0.2, 0.5, 0.7] and stairs.showlegend
    assert all("spike_rate (min)" in t for t in front.text)


def test_figure_counts_match_pareto_front_on_a_sweep():
    recs = _records()
    fig = pareto_figure(recs, TWO, label_keys=LABELS)
    front_ids = {r["trial_id"] for r in pareto_front(recs, TWO)}
    traces = _traces(fig)
    assert len(traces["Pareto front"].x) == len(front_ids)
    assert len(traces["dominated"].x) == len(recs) - len(front_ids)
    assert list(traces["staircase"].x) == sorted(traces["Pareto front"].x)
    assert 0 < len(front_ids) < len(recs)
    hover_ids = {t.split("<br>")[0].removeprefix("trial_id: ") for t in traces["Pareto front"].text}
    assert hover_ids == front_ids


def test_html_is_self_contained_and_names_front_trials(tmp_path):
    recs = _records()
    out = pareto_html(recs, THREE, tmp_path / "sub" / "pareto.html", label_keys=LABELS, title="sweep 1")
    assert out == tmp_path / "sub" / "pareto.html" and out.is_file()
    text = out.read_text()
    # plotly.js is inside the page (one copy), nothing is fetched from a CDN or elsewhere
    assert text.count("<script src=") == 0 and 'src="http' not in text
    assert text.count("plotly.js v") == 1 and len(out.read_bytes()) > 3_000_000
    assert "sweep 1" in text
    for rec in pareto_front(recs, THREE):
        assert rec["trial_id"] in text


def test_projections_mark_the_same_front_in_every_plane():
    """Three objectives: one panel per pair, the front over all three in each."""
    fig = pareto_projections_figure(SMALL, THREE, label_keys=("trial_id",))
    front_traces = [t for t in fig.data if t.name == "Pareto front"]
    assert len(front_traces) == 3                        # (0, 1), (0, 2), (1, 2)
    assert [len(t.x) for t in front_traces] == [4, 4, 4]  # t4 lacks clean_acc
    # panel 2 is robust_acc vs spike_rate: x is robust_acc, y spike_rate
    assert sorted(front_traces[1].x) == [0.2, 0.4, 0.5, 0.7]
    assert sorted(front_traces[1].y) == [0.1, 0.2, 0.25, 0.3]
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["robust_acc vs clean_acc", "robust_acc vs spike_rate",
                      "clean_acc vs spike_rate"]
    with pytest.raises(ValueError, match="at least 3"):
        pareto_projections_figure(SMALL, TWO)


@pytest.mark.parametrize("objs", [TWO, THREE], ids=["2d", "3d"])
def test_png_is_a_valid_png(tmp_path, objs):
    out = pareto_png(_records(), objs, tmp_path / "pareto.png", label_keys=LABELS)
    assert out == tmp_path / "pareto.png"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
    # IHDR: a 7 x 5 inch figure at 120 dpi, or three projection panels side by side
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == ((840, 600) if len(objs) == 2 else (1656, 552))


def test_plots_handle_records_without_front(tmp_path):
    recs = [{"trial_id": "x", "robust_acc": math.nan, "clean_acc": 0.5}]
    fig = pareto_figure(recs, TWO)
    assert all(len(t.x) == 0 for t in _traces(fig).values())
    assert pareto_png(recs, TWO, tmp_path / "empty.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(ValueError, match="objectives"):
        pareto_figure(SMALL, TWO[:1])
    with pytest.raises(ValueError, match="label_keys"):
        pareto_png(SMALL, TWO, tmp_path / "x.png", label_keys="trial_id")


def test_docstring_examples():
    import tune.plots.figure
    import tune.plots.projections

    for module in (plots_module, tune.plots.figure, tune.plots.projections):
        result = doctest.testmod(module)
        assert result.attempted >= 3 and result.failed == 0, module.__name__
