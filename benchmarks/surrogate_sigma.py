"""Does training reach a useful accuracy at every noise level sigma? (issue 15, point 1)

Usage:
    .venv/bin/python benchmarks/surrogate_sigma.py                 # the README's table
    .venv/bin/python benchmarks/surrogate_sigma.py --sigmas 0,0.03 --seeds 0 --epochs 2

Trains ``digits_cnn`` on scikit-learn's digits for every sigma and seed with the sweep's
training settings (``examples/digits-quick.yaml``: 6 epochs of Adam at lr 2e-3, T = 4,
lambda 0.5, delta 0.5), twice for sigma > 0:

- ``smoothed`` (the default): the Gaussian surrogate of std sqrt(sigma^2 + S0^2),
  S0 = 1/sqrt(2 pi), the width of the sigma = 0 surrogate Sigmoid(alpha=4);
- ``exact``: the Gaussian density of the noise alone (std sigma), the default before
  issue 15.

It prints the final clean test accuracy (noise on, as deployed) per sigma: mean, min and
max over seeds, and the number of runs at chance (below 20% on ten classes). Rows are also
written as JSON lines to ``--out`` so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:   # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from tgo.config import TrainConfig  # noqa: E402
from tgo.neurons import surrogates  # noqa: E402
from tgo.train import accuracy, fit  # noqa: E402

CHANCE = 0.2   # ten classes: 10% is chance; below 20% counts as "did not learn"


def run_one(sigma: float, surrogate: str, seed: int, epochs: int) -> dict[str, Any]:
    torch.set_num_threads(1)
    start = time.perf_counter()
    extra: dict[str, Any] = {}
    if surrogate == "exact" and sigma > 0:
        # surrogate_alpha is not a TrainConfig field: build the config, then swap the width.
        extra = {"surrogate": "erf"}
    config = TrainConfig(dataset="digits", seed=seed, device="cpu", epochs=epochs,
                         margin_weight=0.5, margin=0.5, noise_scale=sigma, **extra)
    if surrogate == "exact" and sigma > 0:
        # The old default width: erf_alpha without the S0 smoothing.
        with mock.patch.object(surrogates, "erf_alpha",
                               lambda s, smoothing=0.0: 1.0 / (math.sqrt(2.0) * s)):
            trained = fit(config)
    else:
        trained = fit(config)
    torch.manual_seed(seed)
    clean = accuracy(trained.model, trained.splits.test, torch.device("cpu"))
    return {"sigma": sigma, "surrogate": surrogate, "seed": seed, "epochs": epochs,
            "clean": clean, "seconds": time.perf_counter() - start}


def table(rows: list[dict[str, Any]]) -> str:
    sigmas = sorted({r["sigma"] for r in rows})
    kinds = [k for k in ("smoothed", "exact") if any(r["surrogate"] == k for r in rows)]
    head = "| sigma | " + " | ".join(f"{k}: mean (min-max), at chance" for k in kinds) + " |"
    lines = [head, "|---:|" + "---|" * len(kinds)]
    for s in sigmas:
        cells = []
        for k in kinds:
            accs = [r["clean"] for r in rows if r["sigma"] == s and
                    (r["surrogate"] == k or (s == 0 and r["surrogate"] == "smoothed"))]
            if not accs:
                cells.append("-")
                continue
            low = sum(a < CHANCE for a in accs)
            cells.append(f"{100 * statistics.fmean(accs):.1f} ({100 * min(accs):.1f}-"
                         f"{100 * max(accs):.1f}), {low}/{len(accs)}")
        lines.append(f"| {s:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sigmas", default="0,0.01,0.03,0.1,0.2,0.4")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--surrogates", default="smoothed,exact")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="surrogate_sigma.jsonl")
    ns = parser.parse_args(argv)
    sigmas = [float(s) for s in ns.sigmas.split(",")]
    seeds = [int(s) for s in ns.seeds.split(",")]
    kinds = ns.surrogates.split(",")
    tasks = [(s, k, seed) for s in sigmas for k in kinds for seed in seeds
             if not (s == 0 and k != kinds[0])]   # sigma 0 uses sigmoid(4) either way
    print(f"{len(tasks)} trainings of {ns.epochs} epochs, {ns.jobs} at a time", flush=True)
    rows = []
    with concurrent.futures.ProcessPoolExecutor(ns.jobs) as pool:
        futures = [pool.submit(run_one, s, k, seed, ns.epochs) for s, k, seed in tasks]
        for future in concurrent.futures.as_completed(futures):
            r = future.result()
            rows.append(r)
            with open(ns.out, "a") as f:
                f.write(json.dumps(r) + "\n")
            print(f"sigma {r['sigma']:<5g} {r['surrogate']:<8} seed {r['seed']}  "
                  f"clean {100 * r['clean']:5.1f}  [{r['seconds']:.0f}s]", flush=True)
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
