"""benchmarks/ablation.py on a tiny budget: every row and column, and the written report."""

from __future__ import annotations

import math

import pytest
from scripts import script_module


@pytest.fixture(scope="module")
def ablation():
    with script_module("benchmarks/ablation.py", "benchmarks_ablation") as module:
        yield module


@pytest.fixture(scope="module")
def tiny(ablation):
    settings = ablation.AblationSettings(epochs=1, timesteps=2, batch_size=128, steps=2,
                                         eot_samples=2, examples=16, flip_examples=8)
    lines: list[str] = []
    rows = ablation.run_ablation(settings, seeds=[0], log=lines.append)
    return settings, rows, lines


def test_every_regime_and_variant_has_every_column(ablation, tiny):
    _, rows, lines = tiny
    assert [(r["regime"], r["variant"]) for r in rows] == [
        (regime, variant) for regime in ablation.REGIMES for variant in ablation.VARIANTS]
    columns = (*ablation.ACCURACIES, *ablation.DIAGNOSTICS)
    for row in rows:
        assert row["seed"] == 0 and row["n"] == 16
        assert all(0.0 <= row[c] <= 1.0 and not math.isnan(row[c]) for c in columns)
        assert row["worst"] <= min(row["eot_pgd"], row["apgd_eot"]) <= row["clean"]
    assert len(lines) == 1 + len(rows)       # a header, then one progress line per model
    assert "8 models" in lines[0] and "adversarial both" in " ".join(lines[-1].split())


def test_variants_switch_the_parts_of_tgo(ablation):
    s = ablation.AblationSettings()
    configs = {v: s.train_config("adversarial", v, 1) for v in ablation.VARIANTS}
    assert (configs["none"].margin_weight, configs["none"].noise_scale) == (0.0, 0.0)
    assert (configs["constraint only"].margin_weight, configs["constraint only"].noise_scale) \
        == (s.margin_weight, 0.0)
    assert (configs["noise only"].margin_weight, configs["noise only"].noise_scale) \
        == (0.0, s.noise_scale)
    assert (configs["both"].margin_weight, configs["both"].noise_scale) \
        == (s.margin_weight, s.noise_scale)
    assert all(c.regime.value == "adversarial" and c.eps_train == s.eps_train and c.seed == 1
               for c in configs.values())
    with pytest.raises(ValueError, match="^variant: expected one of"):
        s.train_config("standard", "guard", 0)
    with pytest.raises(ValueError, match="^regime: expected one of"):
        s.train_config("rat", "both", 0)


def test_report_names_every_column_and_the_command(ablation, tiny):
    settings, rows, _ = tiny
    text = ablation.report(rows, settings, "python benchmarks/ablation.py --seeds 0", 12.0)
    table = ablation.markdown_table(rows)
    header = table.splitlines()[0]
    for name in ("clean", "FGSM", "PGD", "EOT-PGD", "APGD-EOT", "worst case", "near-threshold",
                 "state-flip rate"):
        assert f"| {name} |" in header
    assert len(table.splitlines()) == 2 + 8
    assert "python benchmarks/ablation.py --seeds 0" in text
    assert "## Against the paper" in text and "near-threshold fraction" in text
    for note in settings.column_notes().values():
        assert note in text
    assert "EOT-2 on noisy models" in text and "eps 0.15" in text
