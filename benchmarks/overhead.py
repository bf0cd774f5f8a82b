"""What does the sweep machinery cost? Sweep wall time vs the same trials in a plain loop.

Usage:
    bash .ci/loopback .venv/bin/python benchmarks/overhead.py [--num-samples 6]

Runs the digits sweep without pruning (Ray Tune + Optuna + MLflow, ``max_concurrent``
trials at once), then trains and evaluates exactly the same configurations one after the
other in this process with ``tgo.train.fit`` + the final evaluation, no Ray, no MLflow.
Ideal parallel time = sequential time / concurrency. Prints sweep / ideal (1.0 = no
overhead; it also absorbs the 2-core machine's contention between concurrent trials).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import yaml

from tgo.final_eval import EvalSettings, final_evaluation
from tgo.train import fit
from tune.runner import run_sweep
from tune.spec import SweepSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="examples/digits-quick.yaml")
    parser.add_argument("--num-samples", type=int, default=6)
    args = parser.parse_args()
    base = yaml.safe_load(Path(args.spec).read_text())
    with tempfile.TemporaryDirectory(prefix="tgo-overhead-") as tmp:
        data = {**base, "name": "overhead", "num_samples": args.num_samples,
                "pruner": {"type": "none"}, "storage_path": f"{tmp}/runs",
                "mlflow": {"tracking_uri": f"sqlite:///{tmp}/mlflow.db",
                           "experiment": "overhead"}}
        spec = SweepSpec.from_dict(data)
        outcome = run_sweep(spec)
    searched = list(spec.space)
    settings = EvalSettings(**spec.evaluation.model_dump())
    torch.set_num_threads(max(1, int(spec.resources.cpu)))
    start = time.perf_counter()
    for record in outcome.records:
        config = spec.train_config({k: record[k] for k in searched})
        result = fit(config)
        final_evaluation(result.model, config, result.splits, settings)
    sequential = time.perf_counter() - start
    ideal = sequential / spec.max_concurrent
    print(f"trials {len(outcome.records)} (all finished: {len(outcome.records) == outcome.n_trials})"
          f", {spec.max_concurrent} at a time, {spec.resources.cpu:g} CPU each")
    print(f"sweep wall time       {outcome.wall_s:8.1f} s  (Ray Tune + Optuna + MLflow)")
    print(f"sequential loop       {sequential:8.1f} s  (tgo.train.fit + final evaluation)")
    print(f"ideal parallel        {ideal:8.1f} s  (sequential / {spec.max_concurrent})")
    print(f"sweep / ideal         {outcome.wall_s / ideal:8.2f}")


if __name__ == "__main__":
    main()
