"""benchmarks/digits_acceptance.py: its settings parser, its verdict and one tiny real run."""

from __future__ import annotations

import json

import pytest
from scripts import script_module


@pytest.fixture(scope="module")
def acc():
    with script_module("benchmarks/digits_acceptance.py",
                       "benchmarks_digits_acceptance") as module:
        yield module


def test_settings_parse_and_reject(acc):
    got = acc.parse_settings(["default=0.5/0.2"])
    assert got == {"plain": {"margin_weight": 0.0, "noise_scale": 0.0},
                   "default": {"margin_weight": 0.5, "noise_scale": 0.2}}
    for bad in ["x=0.5", "x=a/b", "plain=1/1", "x=-1/0.2", "x=1/nan"]:
        with pytest.raises(ValueError, match="--tgo"):
            acc.parse_settings([bad])


def _row(setting, seed, lam, sigma, clean, pgd):
    return {"setting": setting, "seed": seed, "margin_weight": lam, "noise_scale": sigma,
            "n": 100, "clean": clean, "pgd": pgd, "attack": "PGD-20", "seconds": 1.0}


def test_verdict_needs_the_band_higher_pgd_and_the_clean_budget(acc):
    rows = []
    for seed in (0, 1):
        rows += [_row("plain", seed, 0, 0, 0.99, {"0.1": 0.8, "0.2": 0.3}),
                 _row("good", seed, 1, 0.3, 0.95, {"0.1": 0.7, "0.2": 0.35}),
                 _row("costly", seed, 1, 0.5, 0.90, {"0.1": 0.7, "0.2": 0.4}),
                 _row("weaker", seed, 1, 0.1, 0.99, {"0.1": 0.9, "0.2": 0.29})]
    table, sentences = acc.verdicts(rows)
    assert "| good | 1 | 0.3 | 95.0 | 70.0 (-10.0, 0/2 up) | 35.0 (+5.0, 2/2 up) |" in table
    assert sentences[0].startswith("- eps 0.1: plain keeps 80.0%, outside")
    by_name = {s.split(",")[1].split(":")[0].strip(): s for s in sentences[1:]}
    assert by_name["good"].endswith(": MET.")
    assert by_name["costly"].endswith(": not met.")     # 10 clean points lost
    assert by_name["weaker"].endswith(": not met.")     # PGD not higher


def test_tiny_real_run_writes_report_and_rows(acc, tmp_path):
    out = tmp_path / "acc.md"
    assert acc.main(["--seeds", "0", "--epochs", "1", "--eps", "0.1", "--jobs", "1",
                     "--examples", "24", "--strong", "--tgo", "t=0.5/0.2",
                     "--out", str(out)]) == 0
    rows = json.loads(out.with_suffix(".json").read_text())
    assert [r["setting"] for r in rows] == ["plain", "t"]
    streamed = [json.loads(line) for line in
                out.with_suffix(".rows.jsonl").read_text().splitlines()]
    assert sorted(r["setting"] for r in streamed) == ["plain", "t"]
    for r in rows:
        assert 0 <= r["pgd"]["0.1"] <= r["clean"] <= 1
    assert "EOT" in rows[1]["attack"] and "## Verdict" in out.read_text()
    assert set(rows[1]["worst"]) == {"0.1"}
    assert rows[1]["worst"]["0.1"] <= min(rows[1]["pgd"]["0.1"], rows[1]["apgd"]["0.1"])
    assert all(r["epochs"] == 1 for r in rows) and ", 1 epochs," in out.read_text()
