"""The table and plot of ``benchmarks/search.py``: final hypervolume, epochs to reach each
baseline's final hypervolume, and wall time, as mean and spread over seeds.

    .venv/bin/python benchmarks/search_report.py search-bench/search.json --out docs
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

#: The method the project ships (``examples/digits-quick.yaml``); see docs/search.md.
DEFAULT = "default"


def _reach(curve: list, target: float) -> int | None:
    return next((int(e) for e, hv in curve if hv >= target - 1e-12), None)


def _spread(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return format(values[0], fmt)
    return (f"{format(statistics.mean(values), fmt)} ({format(min(values), fmt)}-"
            f"{format(max(values), fmt)})")


def _counts(row: dict[str, Any]) -> str:
    return f"{row['trials']} ({row['finished']})"


def table(rows: list[dict[str, Any]], default: str) -> list[str]:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    seeds = sorted({r["seed"] for r in rows})
    by = {(r["method"], r["seed"]): r for r in rows}
    lines = ["| method | final hypervolume, mean (min-max) | per seed | trials (finished) | "
             f"epochs for {default} to reach it, per seed | wall, min |",
             "|---|---|---|---|---|---|"]
    for m in methods:
        mine = [by[(m, s)] for s in seeds if (m, s) in by]
        hvs = [r["hypervolume"] for r in mine]
        reach = []
        for r in mine:
            d = by.get((default, r["seed"]))
            e = _reach(d["curve"], r["hypervolume"]) if d else None
            reach.append(f"{e} of {r['epochs']}" if e is not None else "never")
        extra = ""
        if any("hv_as_reported" in r for r in mine):
            extra = "; as Tune reports it: " + ", ".join(
                f"{r['hv_as_reported']:.4f}" for r in mine)
        lines.append(
            f"| {m} | {_spread(hvs, '.4f')} | {', '.join(f'{h:.4f}' for h in hvs)}{extra} | "
            f"{', '.join(_counts(r) for r in mine)} | "
            f"{', '.join(reach)} | {_spread([r['wall_s'] / 60 for r in mine], '.1f')} |")
    return lines


def verdict(rows: list[dict[str, Any]], default: str) -> list[str]:
    """Issue 12's goal: the default's final hypervolume >= every baseline's on >= 2 of 3
    seeds, and it reaches the best baseline's final hypervolume with <= 60% of its epochs."""
    seeds = sorted({r["seed"] for r in rows})
    by = {(r["method"], r["seed"]): r for r in rows}
    others = [m for m in dict.fromkeys(r["method"] for r in rows)   # warm runs: no baseline
              if m != default and not m.endswith("warm")]
    wins = [s for s in seeds if (default, s) in by and all(
        by[(default, s)]["hypervolume"] >= by[(m, s)]["hypervolume"] - 1e-12
        for m in others if (m, s) in by)]
    mean = {m: statistics.mean(by[(m, s)]["hypervolume"] for s in seeds if (m, s) in by)
            for m in others}
    best = max(mean, key=mean.get) if mean else None
    fractions = []
    for s in seeds:
        if best and (default, s) in by and (best, s) in by:
            e = _reach(by[(default, s)]["curve"], by[(best, s)]["hypervolume"])
            fractions.append(None if e is None else e / by[(best, s)]["epochs"])
    shown = ", ".join("never" if f is None else f"{f:.2f}" for f in fractions)
    warm = []
    for s in seeds:
        if ("warm", s) in by and (default, s) in by:
            cold = by[(default, s)]
            e = _reach(by[("warm", s)]["curve"], cold["hypervolume"])
            warm.append(f"seed {s}: {'never' if e is None else e} of the cold run's "
                        f"{cold['epochs']} epochs")
    warm_line = ([f"- warm start ({default} seeded with its cold run's trials; only the new "
                  f"trials count): reached the cold run's final hypervolume at "
                  + "; ".join(warm) + "."] if warm else [])
    return warm_line + [f"- {default} at least every baseline's final hypervolume: seeds "
            f"{wins or 'none'} of {seeds} (goal: 2 of 3).",
            f"- best baseline by mean final hypervolume: {best}; epochs {default} needs to "
            f"reach its final hypervolume, as a fraction of its epochs, per seed: {shown} "
            "(goal: <= 0.60)."]


def plot(rows: list[dict[str, Any]], path: Path, default: str = DEFAULT) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for m in dict.fromkeys(r["method"] for r in rows):
        curves = [dict((int(e), hv) for e, hv in r["curve"]) for r in rows if r["method"] == m]
        top = min(max(c) for c in curves)
        xs = list(range(1, top + 1))
        ys = []
        for x in xs:   # the last value at or before x, per seed, then the mean
            vals = [next((c[k] for k in range(x, 0, -1) if k in c), 0.0) for c in curves]
            ys.append(statistics.mean(vals))
        ax.plot(xs, ys, label=f"{m} (default)" if m == default else m,
                linewidth=2.4 if m == default else 1.4)
    ax.set_xlabel("training epochs, all trials (the budget)")
    ax.set_ylabel("hypervolume of the test-split front")
    ax.set_title("Anytime hypervolume, mean over seeds (digits, default space)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


HEADER = """# Search at an equal training budget (issue 12)

Produced by `bash .ci/loopback .venv/bin/python benchmarks/search.py --report` ({date}, 2-core
CPU, 2 trials at a time): every method searches the default sweep's space
(`examples/digits-quick.yaml`: eps_train, lambda, delta, sigma, T; 6 epochs of adversarial
training per trial; objectives clean and robust accuracy on the test split, robust = worst
case of PGD-10 and APGD-10 at eps 0.25 with EOT-4, noise on) until its trials have trained
**{budget} epochs** in all ({trials:g} full trials' worth; `stop.max_epochs`), for seeds {seeds}.
A trial counts on the front when it finished training; the hypervolume (reference 0, 0) is
that front's. Methods: `random` (RandomSampler, no pruning), `ray_recipe` (Ray Tune's
`OptunaSearch` (TPE) + `ASHAScheduler` on 0.5 clean + 0.5 robust, `MLflowLoggerCallback`),
`nsga2` (population 8), `tpe` and `gp` (4 random trials first) without pruning, `gp_mo_asha`
(GP + MO-ASHA, rungs at epochs 2 and 6), `warm` (the default seeded with its cold run;
`nsga2_warm`: NSGA-II seeded with its own, from when NSGA-II was the default).
The default (`make sweep`) is **{default}**. Wall times are this shared machine's and only
roughly comparable.

![anytime hypervolume](search.png)

"""


def write_report(rows: list[dict[str, Any]], budget: int, folder: Path,
                 default: str = DEFAULT) -> str:
    import datetime

    folder.mkdir(parents=True, exist_ok=True)
    lines = table(rows, default) + [""] + verdict(rows, default)
    plot(rows, folder / "search.png", default)
    (folder / "search.json").write_text(json.dumps(rows))
    text = "\n".join(lines)
    seeds = ", ".join(str(s) for s in sorted({r["seed"] for r in rows}))
    budget = budget or max((r["epochs"] for r in rows), default=0)
    (folder / "search.md").write_text(HEADER.format(
        date=datetime.date.today().isoformat(), budget=budget, trials=budget / 6, seeds=seeds, default=default)
        + text + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--default", default=DEFAULT,
                        help="the method the default spec is (search.py finds it)")
    ns = parser.parse_args(argv)
    rows = json.loads(ns.results.read_text())
    print(write_report(rows, 0, ns.out, ns.default))
    return 0


if __name__ == "__main__":
    sys.exit(main())
