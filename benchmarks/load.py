"""Load: a sweep of many one-epoch trials against a real `mlflow server`; what logging costs.

Usage:
    bash .ci/loopback .venv/bin/python benchmarks/load.py [--num-samples 200]
    bash .ci/loopback .venv/bin/python benchmarks/load.py --num-samples 2000 --cluster 2

``--cluster N`` runs the sweep on a local multi-node Ray cluster (``cluster/local_cluster.py``:
a head with no CPUs for trials and N one-CPU workers, token auth) instead of a local Ray.

Starts `mlflow server` on 127.0.0.1 (mlflow/serve.sh, in a temporary folder), runs a digits
sweep of ``--num-samples`` one-epoch trials of a tiny SNN (T = 1, a 2-step PGD for the
objective), 2 at a time on a local Ray, then checks what MLflow holds against Ray's results:

* one child run per trial, all FINISHED, with their objectives;
* the Pareto front in MLflow (``pareto`` tags and the parent's ``pareto.json``) equals the
  front computed from Ray's results;
* ``tgo pareto`` and ``tgo pick --no-verify`` (run as a user runs them, new processes:
  reading the sweep, not re-measuring a model) answer, with the front's trial ids, in under
  10 s each.

``--front-every-s 0`` rebuilds the front after every finished trial (the behaviour before
the 30 s throttle). Prints the driver's MLflow time per trial (per-epoch metrics, run states, front rebuilds,
front models) and its share of the sweep's wall time, and the driver process's CPU time
(user + system) as a share of the wall. ``--out FILE`` writes the figures as JSON. Exits 1
when a check fails.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
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
            "train": {**base["train"], "batch_size": 64, "lr": 0.1, "val_subset": 64, "val_steps": 1,
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

    from tune.tracking.reader import search_runs

    client = MlflowClient(url)
    problems = []
    exp = client.get_experiment_by_name(spec.mlflow.experiment)
    runs = search_runs(client, [exp.experiment_id], "")   # every page
    children = [r for r in runs if r.data.tags.get("tgo.kind") == "trial"]
    finished = [c for c in children if c.info.status == "FINISHED"
                and {"clean_acc", "robust_acc"} <= set(c.data.metrics)]
    if len(children) != spec.num_samples or len(finished) != spec.num_samples:
        problems.append(f"{len(children)} child runs, {len(finished)} finished with "
                        f"objectives; expected {spec.num_samples}")
    ray_ids = {r["trial_id"] for r in outcome.records}
    if {c.data.tags.get("tgo.trial_id") for c in finished} != ray_ids:
        problems.append("the finished child runs are not the trials Ray finished")
    objectives = objectives_of(spec)
    expected = {r["trial_id"] for r in pareto_front(outcome.records, objectives)}
    tagged = {c.data.tags["tgo.trial_id"] for c in children if c.data.tags.get("pareto") == "true"}
    if tagged != expected:
        problems.append(f"pareto tags {sorted(tagged)} != front of Ray's results "
                        f"{sorted(expected)}")
    untagged = [c for c in finished if "pareto" not in c.data.tags]
    if untagged:
        problems.append(f"{len(untagged)} finished child runs without a pareto tag")
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(outcome.parent_run_id, "pareto.json", tmp)
        listed = json.loads(Path(path).read_text())
    members = listed["front"] if isinstance(listed, dict) else listed
    if {m["trial_id"] for m in members} != expected:
        problems.append("pareto.json does not list the front of Ray's results")
    return problems


def _time_cli(args: list[str], expected: set[str], problems: list[str]) -> float:
    """Run ``tgo ARGS`` as a user would; check it names every front member; seconds."""
    start = time.perf_counter()
    proc = subprocess.run([str(Path(sys.executable).parent / "tgo"), *args],
                          capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        problems.append(f"tgo {args[0]} exited {proc.returncode}: {proc.stderr[-500:]}")
    elif args[0] == "pareto" and not all(t in proc.stdout for t in expected):
        problems.append("tgo pareto does not list every front member")
    elif args[0] == "pick" and not any(t in proc.stdout for t in expected):
        problems.append("tgo pick did not pick a front member")
    if seconds >= 10:
        problems.append(f"tgo {args[0]} took {seconds:.1f} s (goal: under 10 s)")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=200)
    parser.add_argument("--front-every-s", type=float, default=None,
                        help="seconds between front rebuilds while trials run (default: "
                             "the callback's, 30; 0 rebuilds after every finished trial)")
    parser.add_argument("--cluster", type=int, default=0, metavar="WORKERS",
                        help="run on a local multi-node Ray cluster with this many workers")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
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
        cluster = tmp / "rc" if args.cluster else None
        try:
            address = _start_cluster(cluster, args.cluster) if cluster else None
            spec = _spec(url, tmp, args.num_samples)
            cpu0, wall0 = _cpu_s(), time.perf_counter()
            outcome = run_sweep(spec, address=address)
            driver_cpu = _cpu_s() - cpu0
            problems = _check(spec, outcome, url)
            expected = {r["trial_id"] for r in outcome.front}
            cli = {"tgo_pareto_s": _time_cli(["pareto", spec.name, "--tracking-uri", url],
                                             expected, problems),
                   "tgo_pick_s": _time_cli(["pick", spec.name, "--tracking-uri", url,
                                            "--maximize", "robust_acc", "--no-verify", "--out",
                                            str(tmp / "deploy.yaml")], expected, problems)}
        finally:
            import ray

            ray.shutdown()   # before the cluster goes: a connected driver dies with it
            subprocess.run(["bash", str(ROOT / "mlflow" / "stop.sh"), "--data-dir",
                            str(tmp / "mlflow")], check=False)
            if cluster and (cluster / "cluster.json").exists():
                subprocess.run([sys.executable, str(ROOT / "cluster" / "local_cluster.py"),
                                "stop", "--dir", str(cluster)], check=False)
    n = outcome.n_trials
    where = f"{args.cluster}-worker local cluster" if args.cluster else "local Ray"
    print(f"\ntrials {n}: {len(outcome.records)} finished, {outcome.n_failed} failed; "
          f"front {len(outcome.front)} configs; on a {where}")
    print(f"sweep wall time          {outcome.wall_s:8.1f} s  ({outcome.wall_s / n:.2f} s per "
          f"trial, {spec.max_concurrent} at a time)")
    print(f"driver's MLflow time     {outcome.mlflow_s:8.1f} s  ({1000 * outcome.mlflow_s / n:.0f}"
          " ms per trial)")
    print(f"MLflow share of the wall {outcome.mlflow_s / outcome.wall_s:8.1%}")
    print(f"driver CPU (user+sys)    {driver_cpu:8.1f} s  ({driver_cpu / outcome.wall_s:.1%} of the "
          f"wall, {1000 * driver_cpu / n:.0f} ms per trial)")
    print(f"tgo pareto               {cli['tgo_pareto_s']:8.1f} s")
    print(f"tgo pick                 {cli['tgo_pick_s']:8.1f} s")
    for problem in problems:
        print(f"CHECK FAILED: {problem}")
    print("checks: " + ("all passed" if not problems else f"{len(problems)} failed"))
    if args.out:
        args.out.write_text(json.dumps({
            "trials": n, "finished": len(outcome.records), "failed": outcome.n_failed,
            "front": len(outcome.front), "where": where, "wall_s": outcome.wall_s,
            "mlflow_s": outcome.mlflow_s, "driver_cpu_s": driver_cpu,
            "wall_check": time.perf_counter() - wall0, **cli, "problems": problems}, indent=1))
    return 1 if problems else 0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _start_cluster(folder: Path, workers: int) -> str:
    """Start the local multi-node cluster; set this process's client variables; address."""
    import os

    script = ROOT / "cluster" / "local_cluster.py"
    ports = [str(_free_port()) for _ in range(3)]
    subprocess.run([sys.executable, str(script), "start", "--dir", str(folder), "--workers",
                    str(workers), "--head-cpus", "0", "--port", ports[0], "--dashboard-port",
                    ports[1], "--client-port", ports[2], "--timeout", "300"], check=True)
    sys.path.insert(0, str(script.parent))
    import local_cluster

    state = json.loads((folder / "cluster.json").read_text())
    env = local_cluster.client_env(state)
    os.environ.update(env)
    return env["RAY_ADDRESS"]

if __name__ == "__main__":
    sys.exit(main())
