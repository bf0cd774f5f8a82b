"""Does pruning save epochs without losing the front? Same trial budget, three pruners.

Usage (Ray must run on loopback here, hence the wrapper):
    bash .ci/loopback .venv/bin/python benchmarks/pruning.py                # 3 seeds
    bash .ci/loopback .venv/bin/python benchmarks/pruning.py --seeds 0 --num-samples 6

For each seed the digits sweep (examples/digits-quick.yaml) runs three times with the same
sampler seed and trial budget: no pruning, MO-ASHA (our multi-objective pruner) and Optuna's
MedianPruner on val_robust_acc (``--pruners`` picks others, e.g. ``mo_asha_g2``). Prints epochs trained and the final Pareto hypervolume of
each, and per pruner the ratios against no pruning (target: >= 40% fewer epochs, hypervolume
within 3%).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import yaml

from tune.runner import run_sweep
from tune.spec import SweepSpec

PRUNERS = {
    "none": {"type": "none"},
    "mo_asha": {"type": "mo_asha", "eta": 3, "grace_epochs": 1},     # the example's: rungs 1, 3
    "mo_asha_g2": {"type": "mo_asha", "eta": 3, "grace_epochs": 2},  # one rung, at epoch 2
    "median": {"type": "median", "metric": "val_robust_acc", "mode": "max",
               "n_warmup_epochs": 1},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="examples/digits-quick.yaml")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--num-samples", type=int, default=8)
    parser.add_argument("--pruners", default="none,mo_asha,median",
                        help=f"comma-separated, from {', '.join(PRUNERS)} (none is the baseline)")
    args = parser.parse_args()
    base = yaml.safe_load(Path(args.spec).read_text())
    chosen = {name: PRUNERS[name] for name in ["none"] + [
        p for p in args.pruners.split(",") if p != "none"]}
    rows = []
    with tempfile.TemporaryDirectory(prefix="tgo-pruning-") as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            for name, pruner in chosen.items():
                data = {**base, "name": f"prune-{name}-s{seed}", "num_samples": args.num_samples,
                        "pruner": pruner, "sampler": {**base["sampler"], "seed": seed},
                        "storage_path": f"{tmp}/runs",
                        "mlflow": {"tracking_uri": f"sqlite:///{tmp}/mlflow.db",
                                   "experiment": "pruning-benchmark"}}
                data["train"] = {**base.get("train", {}), "seed": seed}
                out = run_sweep(SweepSpec.from_dict(data))
                rows.append((seed, name, out.epochs_trained, out.hypervolume, out.n_pruned,
                             out.wall_s))
                print(f"seed {seed} {name:<8} epochs {out.epochs_trained:>3}  hypervolume "
                      f"{out.hypervolume:.4f}  pruned {out.n_pruned}  wall {out.wall_s:.0f}s",
                      flush=True)
    print()
    print(f"{'pruner':<9}{'epochs':>8}{'hypervolume':>13}{'epochs vs none':>16}"
          f"{'HV vs none':>12}   (means over seeds {args.seeds})")
    for name in chosen:
        mine = [r for r in rows if r[1] == name]
        ref = {r[0]: r for r in rows if r[1] == "none"}
        epochs = statistics.mean(r[2] for r in mine)
        hv = statistics.mean(r[3] for r in mine)
        e_ratio = statistics.mean(r[2] / ref[r[0]][2] for r in mine)
        h_ratio = statistics.mean(r[3] / ref[r[0]][3] for r in mine if ref[r[0]][3] > 0)
        print(f"{name:<9}{epochs:>8.1f}{hv:>13.4f}{e_ratio:>16.3f}{h_ratio:>12.3f}")


if __name__ == "__main__":
    main()
