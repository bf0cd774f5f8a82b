"""Load: a sweep of many one-epoch trials against a real `mlflow server`; what logging costs.

Usage:
    bash .ci/loopback .venv/bin/python benchmarks/load.py [--num-samples 200]

Starts `mlflow server` on 127.0.0.1 (mlflow/serve.sh, in a temporary folder), runs a digits
sweep of ``--num-samples`` one-epoch trials of a tiny SNN (T = 1, a 2-step PGD for the
objective), 2 at a time on a local Ray, then checks what MLflow holds against Ray's results:

* one child run per trial, all FINISHED, with their objectives;
* the Pareto front in MLflow (``pareto`` tags and the parent's ``pareto.json``) equals the
  front computed from Ray's results.

``--front-every-s 0`` rebuilds the front after every finished trial (the behaviour before
the 30 s throttle). Prints the driver's MLflow time per trial (per-epoch metrics, run states, front rebuilds,
front models) and its share of the sweep's wall time. Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tune.pareto import pareto_front  # noqa: E402
from tune.runner import run_sweep  # noqa: E402
from tune.tracking import objectives_of  # noqa: E402
from tune.spec import SweepSpec  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spec(url: str, tmp: Path, n: int) -> SweepSpec:
    base = yaml.safe_load((ROOT / "examples" / "digits-quick.yaml").read_text())
    data = {**base, "name": "load", "epochs": 1, "num_samples": n, "max_concurrent": 2,
            "train": {**base["train"], "batch_size": 64, "lr": 0.01, "val_subset": 64, "val_steps": 1,
                      "val_eot_samples": 1},
            "space": {**base["space"], "timesteps": {"type": "choice", "values": [1]}},
            "sampler": {"type": "random", "seed": 0}, "pruner": {"type": "none"},
            "evaluation": {"eps": 0.1, "steps": 2, "eot_samples": 1, "max_examples": 100},
            "mlflow": {"tracking_uri": url, "experiment": "load"},
            "storage_path": str(tmp / "runs")}
    if "attacks" in SweepSpec.model_fields["evaluation"].annotation.model_fields:
        data["evaluation"]["attacks"] = ["pgd"]
    return SweepSpec.from_dict(data)


def _check(spec: SweepSpec, outcome, url: str) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(url)
    problems = []
    exp = client.get_experiment_by_name(spec.mlflow.experiment)
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    children = [r for r in runs if r.data.tags.get("tgo.kind") == "trial"]
    finished = [c for c in children if c.info.status == "FINISHED"
                and {"clean_acc", "robust_acc"} <= set(c.data.metrics)]
    if len(children) != spec.num_samples or len(finished) != spec.num_samples:
        problems.append(f"{len(children)} child runs, {len(finished)} finished with "
                        f"objectives; expected {spec.num_samples}")
    objectives = objectives_of(spec)
    expected = {r["trial_id"] for r in pareto_front(outcome.records, objectives)}
    tagged = {c.data.tags["tgo.trial_id"] for c in children if c.data.tags.get("pareto") == "true"}
    if tagged != expected:
        problems.append(f"pareto tags {sorted(tagged)} != front of Ray's results "
                        f"{sorted(expected)}")
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(outcome.parent_run_id, "pareto.json", tmp)
        listed = json.loads(Path(path).read_text())
    members = listed["front"] if isinstance(listed, dict) else listed
    if {m["trial_id"] for m in members} != expected:
        problems.append("pareto.json does not list the front of Ray's results")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=200)
    parser.add_argument("--front-every-s", type=float, default=None,
                        help="seconds between front rebuilds while trials run (default: "
                             "the callback's, 30; 0 rebuilds after every finished trial)")
    args = parser.parse_args()
    if args.front_every_s is not None:
        import tune.tracking.callback
        tune.tracking.callback.FRONT_EVERY_S = args.front_every_s
    with tempfile.TemporaryDirectory(prefix="tgo-load-") as tmp:
        tmp = Path(tmp)
        port = _free_port()
        subprocess.run(["bash", str(ROOT / "mlflow" / "serve.sh"), "--data-dir",
                        str(tmp / "mlflow"), "--port", str(port), "--wait"], check=True)
        url = f"http://127.0.0.1:{port}"
        try:
            spec = _spec(url, tmp, args.num_samples)
            outcome = run_sweep(spec)
            problems = _check(spec, outcome, url)
        finally:
            subprocess.run(["bash", str(ROOT / "mlflow" / "stop.sh"), "--data-dir",
                            str(tmp / "mlflow")], check=False)
    n = outcome.n_trials
    print(f"\ntrials {n}: {len(outcome.records)} finished, {outcome.n_failed} failed; "
          f"front {len(outcome.front)} configs")
    print(f"sweep wall time          {outcome.wall_s:8.1f} s  ({outcome.wall_s / n:.2f} s per "
          "trial, 2 at a time)")
    print(f"driver's MLflow time     {outcome.mlflow_s:8.1f} s  ({1000 * outcome.mlflow_s / n:.0f}"
          " ms per trial)")
    print(f"MLflow share of the wall {outcome.mlflow_s / outcome.wall_s:8.1%}")
    for problem in problems:
        print(f"CHECK FAILED: {problem}")
    print("checks: " + ("all passed" if not problems else f"{len(problems)} failed"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
