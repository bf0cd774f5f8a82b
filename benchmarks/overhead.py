"""What does the sweep machinery cost? Sweep wall time vs the same trials in a plain loop.

Usage:
    bash .ci/loopback .venv/bin/python benchmarks/overhead.py                    # 1 at a time
    bash .ci/loopback .venv/bin/python benchmarks/overhead.py --concurrency 2    # + contention

Runs the digits sweep without pruning (Ray Tune + Optuna + MLflow), ``--concurrency``
trials at once, then trains and evaluates exactly the same configurations one after the
other in this process with ``tgo.train.fit`` + the final evaluation, no Ray, no MLflow.
Ideal time = sequential time / concurrency; sweep / ideal is the overhead (1.0 = none). At
concurrency 1 there is no contention between trials, so the ratio is the machinery alone
(issue 12 goal: <= 1.15). Where the rest goes:

* inside the trials (Ray's ``time_total_s`` summed, minus the loop's time): checkpoints
  (``TrainState.save`` timed here per epoch) and Ray's report/upload;
* outside them (sweep wall minus the summed trial times): actor starts, the searcher,
  the driver's callbacks; of which the driver's MLflow writes and front rebuilds are
  ``SweepOutcome.mlflow_s``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import yaml
from ray import tune as raytune

from tgo.final_eval import EvalSettings, final_evaluation
from tgo.train import fit
from tune.runner import run_sweep
from tune.spec import SweepSpec


class _TrialTimes(raytune.Callback):
    """Each trial's last ``time_total_s`` (time inside the trainable)."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.total[trial.trial_id] = float(result.get("time_total_s", 0.0))


def _loop(spec: SweepSpec, records: list[dict]) -> tuple[float, float]:
    """(seconds for fit + final evaluation of every record, seconds of checkpoint saves
    at one per epoch)."""
    searched = list(spec.space)
    settings = EvalSettings(**spec.evaluation.model_dump())
    torch.set_num_threads(max(1, int(spec.resources.cpu)))
    start, measured, saving = time.perf_counter(), 0.0, 0.0
    for record in records:
        config = spec.train_config({k: record[k] for k in searched})
        result = fit(config)
        final_evaluation(result.model, config, result.splits, settings)
        with tempfile.TemporaryDirectory(prefix="tgo-ckpt-") as folder:
            t0 = time.perf_counter()
            result.state.save(folder)
            once = time.perf_counter() - t0
        measured += once
        saving += once * config.epochs   # the sweep saves one checkpoint per epoch
    return time.perf_counter() - start - measured, saving


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="examples/digits-quick.yaml")
    parser.add_argument("--num-samples", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    base = yaml.safe_load(Path(args.spec).read_text())
    times = _TrialTimes()
    with tempfile.TemporaryDirectory(prefix="tgo-overhead-") as tmp:
        data = {**base, "name": "overhead", "num_samples": args.num_samples,
                "max_concurrent": args.concurrency,
                "pruner": {"type": "none"}, "storage_path": f"{tmp}/runs",
                "mlflow": {"tracking_uri": f"sqlite:///{tmp}/mlflow.db",
                           "experiment": "overhead"}}
        spec = SweepSpec.from_dict(data)
        outcome = run_sweep(spec, callbacks=[times])
    sequential, saving = _loop(spec, outcome.records)
    ideal = sequential / spec.max_concurrent
    in_trials = sum(times.total.values())
    print(f"trials {len(outcome.records)} (all finished: {len(outcome.records) == outcome.n_trials})"
          f", {spec.max_concurrent} at a time, {spec.resources.cpu:g} CPU each")
    print(f"sweep wall time       {outcome.wall_s:8.1f} s  (Ray Tune + Optuna + MLflow)")
    print(f"sequential loop       {sequential:8.1f} s  (tgo.train.fit + final evaluation)")
    print(f"ideal                 {ideal:8.1f} s  (sequential / {spec.max_concurrent})")
    print(f"sweep / ideal         {outcome.wall_s / ideal:8.2f}")
    print("where the difference goes:")
    print(f"  inside trials       {in_trials - sequential:8.1f} s  (summed trial time "
          f"{in_trials:.1f} s minus the loop)")
    print(f"    of it checkpoints {saving:8.1f} s  (TrainState.save once per epoch)")
    if spec.max_concurrent == 1:
        print(f"  outside trials      {outcome.wall_s - in_trials:8.1f} s  (actor starts, "
              "searcher, driver callbacks)")
    print(f"    driver MLflow     {outcome.mlflow_s:8.1f} s  (writes + front rebuilds)")


if __name__ == "__main__":
    main()
