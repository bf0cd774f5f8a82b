"""What front does a new user's default sweep give? (issue 15, point 2)

Usage (Ray listens on every interface: run inside the loopback namespace):
    bash .ci/loopback .venv/bin/python benchmarks/default_front.py            # seeds 0, 1, 2
    bash .ci/loopback .venv/bin/python benchmarks/default_front.py --seeds 0 --spec my.yaml

Runs the default spec (``examples/digits-quick.yaml``, what ``make sweep`` runs) once per
sampler seed, each a complete sweep on local Ray with its own SQLite MLflow store under
``--out``, and reports per seed: trials finished and pruned, wall time, the front's size,
the spread between its ends (clean and robust accuracy, in points), and the finished
trials at chance (clean accuracy below 20% on ten classes), then every front member. The
check of issue 15: at least 4 members with distinct configs, ends at least 3 points apart in clean and 10 in
robust accuracy, no finished trial at chance. Results are also written as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:   # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from tune.runner import run_sweep  # noqa: E402
from tune.spec import load_spec  # noqa: E402

CHANCE = 0.2
MIN_MEMBERS, MIN_CLEAN_SPREAD, MIN_ROBUST_SPREAD = 4, 0.03, 0.10


def one_seed(spec_file: Path, seed: int, out: Path) -> dict[str, Any]:
    spec = load_spec(spec_file)
    name = f"{spec.name}-seed{seed}"
    spec = spec.model_copy(update={
        "name": name,
        "sampler": spec.sampler.model_copy(update={"seed": seed}),
        "storage_path": str(out / f"seed{seed}" / "runs"),
        "mlflow": spec.mlflow.model_copy(update={
            "tracking_uri": f"sqlite:///{out / f'seed{seed}' / 'mlflow.db'}", "experiment": name}),
    }).resolved()
    (out / f"seed{seed}").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    outcome = run_sweep(spec)
    wall = time.perf_counter() - start
    front = sorted(outcome.front, key=lambda r: -r["clean_acc"])
    clean = [r["clean_acc"] for r in front]
    robust = [r["robust_acc"] for r in front]
    return {
        "seed": seed, "wall_s": wall, "trials": outcome.n_trials,
        "finished": len(outcome.records), "pruned": outcome.n_pruned,
        "failed": outcome.n_failed, "hypervolume": outcome.hypervolume,
        "front_size": len(front),
        "clean_spread": max(clean) - min(clean) if front else 0.0,
        "robust_spread": max(robust) - min(robust) if front else 0.0,
        "at_chance": sum(r["clean_acc"] < CHANCE for r in outcome.records),
        "front": [{k: r.get(k) for k in ("trial_id", "clean_acc", "robust_acc", *spec.space)}
                  for r in front],
        "eval": front[0].get("eval") if front else None,
    }


def distinct(row: dict[str, Any]) -> int:
    """Front members with different configs (NSGA-II can sample one config twice; the two
    trials then give the same numbers, as the training seed is fixed)."""
    return len({json.dumps({k: v for k, v in m.items()
                            if k not in ("trial_id", "clean_acc", "robust_acc")}, sort_keys=True)
                for m in row["front"]})


def verdict(row: dict[str, Any]) -> bool:
    return (distinct(row) >= MIN_MEMBERS and row["clean_spread"] >= MIN_CLEAN_SPREAD
            and row["robust_spread"] >= MIN_ROBUST_SPREAD and row["at_chance"] == 0)


def report(rows: list[dict[str, Any]]) -> str:
    lines = ["| sampler seed | finished / pruned | wall | front (distinct configs) | clean spread "
             "| robust spread | at chance | hypervolume | check |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['finished']} / {r['pruned']} | {r['wall_s'] / 60:.1f} min "
                     f"| {r['front_size']} ({distinct(r)}) | {100 * r['clean_spread']:.1f} pts "
                     f"| {100 * r['robust_spread']:.1f} pts | {r['at_chance']} "
                     f"| {r['hypervolume']:.4f} | {'met' if verdict(r) else 'NOT met'} |")
    for r in rows:
        lines += ["", f"Front of seed {r['seed']} (clean %, robust %, config):"]
        for m in r["front"]:
            config = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                               for k, v in m.items() if k not in ("trial_id", "clean_acc",
                                                                  "robust_acc"))
            lines.append(f"- {100 * m['clean_acc']:.1f} / {100 * m['robust_acc']:.1f}: {config}")
    if rows and rows[0]["eval"]:
        lines += ["", f"Robust accuracy: {rows[0]['eval']}, on the test split."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", type=Path, default=REPO / "examples" / "digits-quick.yaml")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=Path("default-front"))
    ns = parser.parse_args(argv)
    rows = []
    for seed in (int(s) for s in ns.seeds.split(",")):
        rows.append(one_seed(ns.spec, seed, ns.out.resolve()))
        (ns.out / "default_front.json").write_text(json.dumps(rows, indent=2, default=str))
        print(f"seed {seed}: front {rows[-1]['front_size']}, "
              f"{rows[-1]['wall_s'] / 60:.1f} min", flush=True)
    print()
    print(report(rows))
    return 0 if all(verdict(r) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
