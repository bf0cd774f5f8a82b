"""Concurrent sweeps: several sweeps at once on one local multi-node Ray cluster, all logging to
one `mlflow server`, which is restarted in the middle; what each backend costs, what is lost.

Usage:
    bash .ci/loopback .venv/bin/python benchmarks/concurrent_sweeps.py [--backend both]
        [--sweeps 4] [--trials 4] [--epochs 3] [--out FILE]

For each backend (``sqlite``: the default store, 1 uvicorn worker; ``postgresql``: a private
PostgreSQL from ``cluster/local_postgres.py``, 4 workers) it starts a local cluster (a head
with no CPUs for trials, 2 one-CPU workers, token auth; ``cluster/local_cluster.py``) and the
server (``mlflow/serve.sh``), then runs ``--sweeps`` drivers at once (``tgo sweep run
--address``, each a process of its own, digits, T = 1). Once ``--restart-after`` child runs
have logged an epoch it stops the server (``mlflow/stop.sh``), waits ``--down-s`` and starts
it again on the same store. The drivers keep what MLflow could not take in their journals
and replay it when the server answers again (``tgo sweep sync`` runs afterwards for a sweep
that ended while it was down).

Then every sweep is checked against Ray's own results (each trial's ``result.json``):

* one child run per trial, FINISHED, with its objectives equal to Ray's;
* its per-epoch metric history: every epoch, each once, equal to Ray's values;
* ``pareto`` tags and the parent's ``pareto.json`` equal the front of Ray's results; every
  front member has its model logged;
* ``tgo pick --register`` registers a front member's model, which loads and runs.

Printed per backend: wall time, the drivers' MLflow time per logged trial (their own
figure), outages the drivers saw, journal ops replayed, syncs needed, HTTP errors (status
>= 500) in the server's log, and the problems found. ``--out`` writes it as JSON. Exits 1
when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "cluster"))

import local_cluster  # noqa: E402
import local_postgres  # noqa: E402

TGO = [sys.executable, "-m", "tune.cli"]
SERVE, STOP = ROOT / "mlflow" / "serve.sh", ROOT / "mlflow" / "stop.sh"
WORKERS = {"sqlite": 1, "postgresql": 4}


def _free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Rig:
    """One backend's cluster, MLflow server (and PostgreSQL), in a short temporary folder."""

    def __init__(self, backend: str, root: Path) -> None:
        self.backend, self.root = backend, root
        self.cluster_dir, self.mlflow_dir, self.pg_dir = root / "rc", root / "mlflow", root / "pg"
        self.port, self.dashboard, self.client_port, self.mlflow_port, self.pg_port = \
            _free_ports(5)
        self.url = f"http://127.0.0.1:{self.mlflow_port}"
        self.state: dict = {}
        self.server_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        self.restart_s = None

    def start(self) -> None:
        out = subprocess.run([sys.executable, str(ROOT / "cluster" / "local_cluster.py"), "start",
                              "--dir", str(self.cluster_dir), "--workers", "2", "--head-cpus", "0",
                              "--port", str(self.port), "--dashboard-port", str(self.dashboard),
                              "--client-port", str(self.client_port), "--timeout", "300"],
                             capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise RuntimeError(f"cluster start failed: {out.stdout}{out.stderr}")
        self.state = json.loads((self.cluster_dir / "cluster.json").read_text())
        if self.backend == "postgresql":
            local_postgres.start(self.pg_dir, self.pg_port)
            self.server_env.update(local_postgres.client_env(self.pg_dir.resolve()))
        self.start_server()

    def start_server(self) -> float:
        start = time.perf_counter()
        out = subprocess.run(["bash", str(SERVE), "--data-dir", str(self.mlflow_dir), "--port",
                              str(self.mlflow_port), "--workers", str(WORKERS[self.backend]),
                              "--wait", "--wait-timeout", "240"], env=self.server_env,
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"serve.sh failed: {out.stdout}{out.stderr}")
        return time.perf_counter() - start

    def stop_server(self) -> None:
        subprocess.run(["bash", str(STOP), "--data-dir", str(self.mlflow_dir)],
                       capture_output=True, text=True, timeout=120)

    def stop(self) -> None:
        self.stop_server()
        if (self.cluster_dir / "cluster.json").exists():
            subprocess.run([sys.executable, str(ROOT / "cluster" / "local_cluster.py"), "stop",
                            "--dir", str(self.cluster_dir)], capture_output=True, timeout=300)
        if self.backend == "postgresql":
            local_postgres.stop(self.pg_dir)

    def driver_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS",
                            "MLFLOW_TRACKING_URI", "PGPASSFILE", "PGPASSWORD")}
        return {**env, **local_cluster.client_env(self.state), "PYTHONUNBUFFERED": "1"}


def write_spec(folder: Path, name: str, url: str, trials: int, epochs: int) -> Path:
    data = {
        "name": name, "dataset": "digits", "model": "digits_cnn", "epochs": epochs,
        "train": {"batch_size": 128, "val_subset": 64, "val_steps": 1, "val_eot_samples": 1},
        "space": {"margin_weight": {"type": "uniform", "low": 0.0, "high": 1.0},
                  "noise_scale": {"type": "uniform", "low": 0.0, "high": 0.3},
                  "timesteps": {"type": "choice", "values": [1]}},
        "objectives": {"clean_acc": "max", "robust_acc": "max"},
        "sampler": {"type": "random", "seed": zlib.crc32(name.encode()) % 1000},
        "pruner": {"type": "none"}, "num_samples": trials, "max_concurrent": 2,
        "evaluation": {"eps": 0.1, "steps": 2, "eot_samples": 1, "max_examples": 100},
        "mlflow": {"tracking_uri": url, "experiment": name},
        "storage_path": str(folder / "runs"),
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _logged_epochs(client, names: list[str]) -> int:
    """Child runs, over the sweeps, with at least one epoch logged."""
    count = 0
    for name in names:
        try:
            exp = client.get_experiment_by_name(name)
        except Exception:   # noqa: BLE001 - a busy server; ask again at the next poll
            return 0
        if exp is None:
            continue
        try:
            runs = client.search_runs([exp.experiment_id], "tags.`tgo.kind` = 'trial'",
                                      max_results=1000)
        except Exception:   # noqa: BLE001
            return 0
        count += sum("val_clean_acc" in run.data.metrics for run in runs)
    return count


def run_sweeps(rig: Rig, folder: Path, n: int, trials: int, epochs: int, restart_after: int,
               down_s: float) -> dict:
    """Start ``n`` drivers, restart the server mid-way, wait, sync; what happened."""
    from mlflow import MlflowClient

    names = [f"conc-{rig.backend[:2]}-{i}" for i in range(n)]
    procs = {}
    start = time.perf_counter()
    for name in names:
        spec = write_spec(folder, name, rig.url, trials, epochs)
        log = open(folder / f"{name}.log", "w")
        procs[name] = subprocess.Popen([*TGO, "sweep", "run", str(spec), "--address",
                                        rig.state["address"]], stdout=log,
                                       stderr=subprocess.STDOUT, env=rig.driver_env(),
                                       cwd=folder, start_new_session=True)
    client, restarted = MlflowClient(rig.url), None
    deadline = time.monotonic() + 1800
    while any(p.poll() is None for p in procs.values()) and time.monotonic() < deadline:
        if restart_after and restarted is None and \
                _logged_epochs(client, names) >= restart_after:
            rig.stop_server()
            restarted = time.perf_counter() - start
            time.sleep(down_s)
            rig.restart_s = rig.start_server()
        time.sleep(2)
    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    wall = time.perf_counter() - start
    sweeps = {}
    for name in names:
        out = (folder / f"{name}.log").read_text()
        path = folder / "runs" / name
        synced = None
        if list(path.glob("**/mlflow_pending.jsonl")):
            done = subprocess.run([*TGO, "sweep", "sync", str(path)], env=rig.driver_env(),
                                  capture_output=True, text=True, timeout=600)
            synced = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else \
                [f"sync failed: {done.stderr[-500:]}"]
        ms = re.search(r"MLflow logging took ([\d.]+) s.*?\((\d+) ms", out)
        sweeps[name] = {
            "returncode": procs[name].returncode, "mlflow_s": float(ms.group(1)) if ms else None,
            "ms_per_trial": int(ms.group(2)) if ms else None,
            "outages_seen": out.count("MLflow unreachable"),
            "recovered": out.count("MLflow answers again"),
            "ops_replayed": sum(len(p.read_text().splitlines())
                                for p in path.glob("**/mlflow_synced.jsonl")),
            "sync": synced, "tail": out[-1500:] if procs[name].returncode else ""}
    return {"wall_s": wall, "restart_at_s": restarted, "sweeps": sweeps}


def _ray_results(path: Path) -> dict[str, dict]:
    """trial id -> {"epochs": {epoch: result}, "final": last result} from Ray's files."""
    out = {}
    for result in path.glob("*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if rows:
            out[rows[-1]["trial_id"]] = {"epochs": {r["epoch"]: r for r in rows if "epoch" in r},
                                         "final": rows[-1]}
    return out


def check_sweep(rig: Rig, folder: Path, name: str, trials: int, epochs: int) -> list[str]:
    """What MLflow holds of sweep ``name`` against Ray's results; the problems found."""
    from mlflow import MlflowClient

    from tune.pareto import pareto_front
    from tune.pareto import Objective

    client, problems = MlflowClient(rig.url), []
    ray = _ray_results(folder / "runs" / name)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=1000) if exp else []
    parents = [r for r in runs if r.data.tags.get("tgo.kind") == "sweep"]
    children = {r.data.tags.get("tgo.trial_id"): r for r in runs
                if r.data.tags.get("tgo.kind") == "trial"}
    if len(ray) != trials or set(children) != set(ray):
        return [f"{name}: {len(children)} child runs for {len(ray)} Ray trials (of {trials})"]
    if len(parents) != 1 or parents[0].info.status != "FINISHED":
        problems.append(f"{name}: parent runs {[p.info.status for p in parents]}")
    for trial_id, child in children.items():
        final = ray[trial_id]["final"]
        if child.info.status != "FINISHED":
            problems.append(f"{name}/{trial_id}: child run {child.info.status}")
        for key in ("clean_acc", "robust_acc"):
            if abs(child.data.metrics.get(key, -1) - final[key]) > 1e-9:
                problems.append(f"{name}/{trial_id}: {key} {child.data.metrics.get(key)} "
                                f"!= Ray's {final[key]}")
        history = client.get_metric_history(child.info.run_id, "val_clean_acc")
        steps = sorted(m.step for m in history)
        if steps != list(range(1, epochs + 1)):
            problems.append(f"{name}/{trial_id}: val_clean_acc steps {steps}")
        for m in history:
            if abs(m.value - ray[trial_id]["epochs"][m.step]["val_clean_acc"]) > 1e-9:
                problems.append(f"{name}/{trial_id}: val_clean_acc at epoch {m.step} differs")
    objectives = [Objective("clean_acc", "max"), Objective("robust_acc", "max")]
    records = [{"trial_id": t, **{k: r["final"][k] for k in ("clean_acc", "robust_acc")}}
               for t, r in ray.items()]
    front = {r["trial_id"] for r in pareto_front(records, objectives)}
    tagged = {t for t, c in children.items() if c.data.tags.get("pareto") == "true"}
    if tagged != front:
        problems.append(f"{name}: pareto tags {sorted(tagged)} != Ray's front {sorted(front)}")
    if any(children[t].data.tags.get("tgo.model_logged") != "true" for t in front):
        problems.append(f"{name}: a front member has no model logged")
    if parents:
        with tempfile.TemporaryDirectory() as tmp:
            listed = json.loads(Path(client.download_artifacts(
                parents[0].info.run_id, "pareto.json", tmp)).read_text())
        members = listed["front"] if isinstance(listed, dict) else listed
        if {m["trial_id"] for m in members} != front:
            problems.append(f"{name}: pareto.json does not list Ray's front")
    return problems


def check_registered(rig: Rig, folder: Path, name: str) -> list[str]:
    """``tgo pick --register``: the model registered is a front member's and runs."""
    import mlflow.pytorch
    import torch
    from mlflow import MlflowClient

    env = {**rig.driver_env(), "MLFLOW_TRACKING_URI": rig.url}
    out = subprocess.run([*TGO, "pick", name, "--tracking-uri", rig.url, "--maximize",
                          "robust_acc", "--register", name, "--out", str(folder / f"{name}.deploy.yaml")],
                         env=env, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        return [f"{name}: tgo pick --register exited {out.returncode}: {out.stderr[-800:]}"]
    client = MlflowClient(rig.url)
    version = client.get_model_version_by_alias(name, "deploy")
    run = client.get_run(version.run_id)
    problems = [] if run.data.tags.get("pareto") == "true" else \
        [f"{name}: the registered model's run is not on the front"]
    # For this call only: a global set_tracking_uri would outlive it (tests run in-process).
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(rig.url):
        model = mlflow.pytorch.load_model(f"models:/{name}@deploy")
    if tuple(model(torch.rand(2, 1, 8, 8)).shape) != (2, 10):
        problems.append(f"{name}: the registered model does not run")
    return problems


def server_errors(rig: Rig) -> int:
    """Responses with status >= 500 and tracebacks in the server's log."""
    log = (rig.mlflow_dir / "mlflow-server.log").read_text(errors="replace")
    return len(re.findall(r'" 5\d\d\b', log)) + log.count("Traceback")


def run_backend(backend: str, sweeps: int, trials: int, epochs: int, restart_after: int,
                down_s: float, register: bool = True) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"tgoc{backend[:2]}"))
    root.chmod(0o711)   # PostgreSQL runs as user postgres under root: it must reach root/pg
    rig = Rig(backend, root)
    try:
        rig.start()
        report = run_sweeps(rig, root, sweeps, trials, epochs, restart_after, down_s)
        problems = [f"{n}: driver exited {s['returncode']}: {s['tail']}"
                    for n, s in report["sweeps"].items() if s["returncode"] != 0]
        if restart_after and report["restart_at_s"] is None:
            problems.append("the server was never restarted: the sweeps ended first")
        for name in report["sweeps"]:
            problems += check_sweep(rig, root, name, trials, epochs)
            if register:
                problems += check_registered(rig, root, name)
        report.update(backend=backend, workers=WORKERS[backend], server_restart_s=rig.restart_s,
                      server_errors=server_errors(rig), problems=problems)
        return report
    finally:
        rig.stop()


def summary(report: dict) -> str:
    s = report["sweeps"].values()
    ms = [x["ms_per_trial"] for x in s if x["ms_per_trial"] is not None]
    lines = [f"{report['backend']} ({report['workers']} worker(s)): {len(s)} sweeps in "
             f"{report['wall_s']:.0f} s; " + (
                 f"server restarted at {report['restart_at_s']:.0f} s (back in "
                 f"{report['server_restart_s']:.0f} s)" if report["restart_at_s"] is not None
                 else "no restart"),
             f"  MLflow ms per logged trial (per driver): {ms}",
             f"  outages seen {sum(x['outages_seen'] for x in s)}, recovered "
             f"{sum(x['recovered'] for x in s)}, journal ops replayed "
             f"{sum(x['ops_replayed'] for x in s)}, syncs needed "
             f"{sum(x['sync'] is not None for x in s)}, server 5xx/tracebacks "
             f"{report['server_errors']}",
             "  checks: " + ("all passed" if not report["problems"] else
                             f"{len(report['problems'])} FAILED")]
    return "\n".join(lines + [f"  CHECK FAILED: {p}" for p in report["problems"]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--sweeps", type=int, default=4)
    parser.add_argument("--trials", type=int, default=4, help="trials per sweep")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--restart-after", type=int, default=4,
                        help="restart the server once this many child runs logged an epoch "
                             "(0: no restart, for the cost of logging alone)")
    parser.add_argument("--down-s", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    reports = []
    for backend in backends:
        reports.append(run_backend(backend, args.sweeps, args.trials, args.epochs,
                                   args.restart_after, args.down_s))
        print(summary(reports[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(reports, indent=1))
    return 1 if any(r["problems"] for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
