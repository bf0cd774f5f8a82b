"""Faults against the real parts: a multi-node Ray cluster on loopback (head + 2 workers,
token auth), a real `mlflow server`, sweeps driven by `tgo sweep run` in a subprocess.

* a trial that diverges (NaN) or raises is marked failed, with its reason, and the sweep
  goes on (the sampler is told FAIL);
* an MLflow outage mid-sweep: training goes on, `tgo sweep sync` backfills, nothing twice;
* the driver killed with SIGKILL: `tgo sweep resume` continues the same sweep;
* a worker node's raylet killed mid-trial: the trial is retried from its last checkpoint
  under the same MLflow child run (last: it leaves the cluster one worker short).

Marked slow (several minutes on 2 cores). Every process is stopped by PID at the end.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from scripts import load_script
import yaml
from mlflow import MlflowClient
from ray import cloudpickle
from ports import free_ports

from tune.search import _study_records

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster" / "local_cluster.py"
SERVE, STOP = ROOT / "mlflow" / "serve.sh", ROOT / "mlflow" / "stop.sh"
TGO = [sys.executable, "-m", "tune.cli"]

local_cluster = load_script("cluster/local_cluster.py", "local_cluster")


def _run(cmd, timeout=600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, **kw)


class Rig:
    """The cluster and the MLflow server of this module."""

    def __init__(self, root: Path):
        self.root = root
        self.cluster_dir, self.mlflow_dir = root / "rc", root / "mlflow"
        self.port, self.dashboard, self.client_port, self.mlflow_port = free_ports(4)
        self.mlflow_url = f"http://127.0.0.1:{self.mlflow_port}"
        self.state: dict = {}

    def start_cluster(self):
        out = _run([sys.executable, CLUSTER, "start", "--dir", self.cluster_dir, "--workers", 2,
                    "--head-cpus", 0, "--port", self.port, "--dashboard-port", self.dashboard,
                    "--client-port", self.client_port, "--timeout", 300], timeout=900)
        assert out.returncode == 0, out.stdout + out.stderr
        self.state = json.loads((self.cluster_dir / "cluster.json").read_text())

    def start_mlflow(self):
        out = _run(["bash", SERVE, "--data-dir", self.mlflow_dir, "--port", self.mlflow_port,
                    "--wait", "--wait-timeout", 120], timeout=200)
        assert out.returncode == 0, out.stdout + out.stderr

    def stop_mlflow(self):
        out = _run(["bash", STOP, "--data-dir", self.mlflow_dir], timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr

    def env(self, **extra) -> dict:
        env = dict(os.environ)
        for var in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS",
                    "MLFLOW_TRACKING_URI"):
            env.pop(var, None)
        env.update(local_cluster.client_env(self.state), PYTHONUNBUFFERED="1", **extra)
        return env

    def client(self) -> MlflowClient:
        return MlflowClient(self.mlflow_url)


@pytest.fixture(scope="module")
def rig():
    # Ray's socket paths must stay under 107 bytes: a short folder, not pytest's tmp_path.
    rig = Rig(Path(tempfile.mkdtemp(prefix="tgorel")))
    try:
        rig.start_cluster()
        rig.start_mlflow()
        yield rig
    finally:
        _run(["bash", STOP, "--data-dir", rig.mlflow_dir], timeout=120)
        if (rig.cluster_dir / "cluster.json").exists():
            _run([sys.executable, CLUSTER, "stop", "--dir", rig.cluster_dir], timeout=300)


def _write_spec(rig: Rig, folder: Path, name: str, **overrides) -> Path:
    data = {
        "name": name, "dataset": "digits", "epochs": 3,
        "train": {"batch_size": 128, "val_subset": 64, "val_steps": 2, "val_eot_samples": 1},
        "space": {"margin_weight": {"type": "uniform", "low": 0.0, "high": 0.6},
                  "noise_scale": {"type": "uniform", "low": 0.0, "high": 0.3},
                  "timesteps": {"type": "choice", "values": [2]}},
        "objectives": {"clean_acc": "max", "robust_acc": "max"},
        "sampler": {"type": "random", "seed": 0},
        "pruner": {"type": "none"},
        "num_samples": 4, "max_concurrent": 2, "max_failures": 1,
        "evaluation": {"eps": 0.1, "steps": 3, "eot_samples": 2, "max_examples": 120},
        "mlflow": {"tracking_uri": rig.mlflow_url, "experiment": name},
        "storage_path": str(folder / "runs"),
    }
    data.update(overrides)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _start_driver(rig: Rig, spec: Path, log: Path, **env) -> subprocess.Popen:
    out = open(log, "w")
    return subprocess.Popen([*TGO, "sweep", "run", str(spec), "--address",
                             rig.state["address"]], stdout=out, stderr=subprocess.STDOUT,
                            env=rig.env(**env), cwd=spec.parent, start_new_session=True)


def _wait(proc: subprocess.Popen, log: Path, timeout: float = 600) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail(f"driver still running after {timeout} s:\n{log.read_text()[-4000:]}")
    return log.read_text()


def _poll(what: str, check, timeout: float = 300, proc: subprocess.Popen | None = None,
          log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"driver ended before {what}:\n{log.read_text()[-4000:]}")
        time.sleep(1.0)
    pytest.fail(f"timed out waiting for {what}" + (f":\n{log.read_text()[-3000:]}" if log else ""))


def _runs(client: MlflowClient, experiment: str) -> tuple[list, list]:
    """(parent runs, child runs) of an experiment."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return [], []
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return ([r for r in runs if r.data.tags.get("tgo.kind") == "sweep"],
            [r for r in runs if r.data.tags.get("tgo.kind") == "trial"])


def _steps(client: MlflowClient, run_id: str, key: str = "val_clean_acc") -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def _study(experiment_path: Path):
    """The Optuna study in the searcher checkpoint Ray saved last."""
    # Named by the session's start time; Ray re-syncs older ones, so mtimes do not tell.
    newest = max(experiment_path.glob("searcher-state-*.pkl"), key=lambda p: p.name)
    with open(newest, "rb") as f:
        state = cloudpickle.load(f)
    return _study_records.load(state["_study_records"], state["_sampler_factory"]())


def _trial_dirs(experiment_path: Path) -> dict[str, Path]:
    """Ray trial id -> trial folder (``run_trial_<trial id>_<n>_<params>_<date>``)."""
    return {p.parent.name.split("_")[2]: p.parent
            for p in experiment_path.glob("run_trial_*/params.json")}


# ------------------------------------------------------------------------------ point 4


def test_a_diverged_or_raising_trial_fails_with_its_reason_and_the_sweep_goes_on(rig, tmp_path):
    name = "faults"
    spec = _write_spec(rig, tmp_path, name, num_samples=6, sampler={"type": "random", "seed": 4},
                       space={"lr": {"type": "choice", "values": [0.002, 0.0021, 0.0022]},
                              "timesteps": {"type": "choice", "values": [2]}})
    faults = [{"when": {"lr": 0.0021}, "epoch": 1, "fault": "nan"},
              {"when": {"lr": 0.0022}, "epoch": 2, "fault": "raise"}]
    log = tmp_path / "driver.log"
    out = _wait(_start_driver(rig, spec, log, TGO_FAULT_INJECTION=json.dumps(faults)), log)
    assert "Traceback" not in out.split("sweep 'faults':")[-1]
    assert "6 trials" in out and "failed" in out, out[-3000:]

    parents, children = _runs(rig.client(), name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 6                      # one child per trial, retries included
    by_lr = {}
    for child in children:
        by_lr.setdefault(json.loads(child.data.params["lr"]), []).append(child)
    assert set(by_lr) == {0.002, 0.0021, 0.0022}, "seed 4 samples every lr"
    for child in by_lr[0.002]:
        assert child.info.status == "FINISHED" and child.data.tags["status"] == "finished"
        assert {"clean_acc", "robust_acc"} <= set(child.data.metrics)
    for lr, reason in ((0.0021, "TrainingDiverged"), (0.0022, "InjectedFault")):
        for child in by_lr[lr]:
            assert child.info.status == "FAILED"
            status = child.data.tags["status"]
            assert status.startswith("failed: ") and reason in status, status
            assert child.data.tags["tgo.retries"] == "1"       # max_failures 1: one retry

    # Ray's results hold the reason too, and the sampler's study was told FAIL.
    experiment = tmp_path / "runs" / name
    study = _study(experiment)
    states = {}
    for trial in study.trials:
        states.setdefault(trial.params["lr"], set()).add(trial.state.name)
    assert states[0.002] == {"COMPLETE"}
    assert states[0.0021] == {"FAIL"} and states[0.0022] == {"FAIL"}
    errors = [d / "error.txt" for d in _trial_dirs(experiment).values()
              if (d / "error.txt").exists()]
    assert len(errors) == len(by_lr[0.0021]) + len(by_lr[0.0022])
    texts = "".join(p.read_text() for p in errors)
    assert "TrainingDiverged" in texts and "InjectedFault" in texts


# ------------------------------------------------------------------------------ point 3


def test_mlflow_outage_mid_sweep_then_sync_backfills_once(rig, tmp_path):
    name = "outage"
    spec = _write_spec(rig, tmp_path, name, epochs=4)
    log = tmp_path / "driver.log"
    client = rig.client()
    proc = _start_driver(rig, spec, log)

    def first_epoch_logged():
        _, children = _runs(client, name)
        return any(_steps(client, c.info.run_id) for c in children)

    _poll("the first logged epoch", first_epoch_logged, proc=proc, log=log)
    rig.stop_mlflow()
    try:
        out = _wait(proc, log)
    finally:
        rig.start_mlflow()
    assert proc.returncode == 0, out[-3000:]
    assert "MLflow unreachable" in out and "tgo sweep sync" in out
    experiment = tmp_path / "runs" / name
    pending = list(experiment.glob("*/mlflow_pending.jsonl"))
    assert pending, "nothing was kept during the outage"

    # Training went on: every trial trained every epoch (Ray's own results).
    trials = _trial_dirs(experiment)
    assert len(trials) == 4
    for folder in trials.values():
        epochs = [json.loads(line)["epoch"] for line in
                  (folder / "result.json").read_text().splitlines()]
        assert epochs == [1, 2, 3, 4]

    synced = _run([*TGO, "sweep", "sync", experiment], env=rig.env(), timeout=300)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "synced" in synced.stdout and "parent run FINISHED" in synced.stdout
    assert not list(experiment.glob("*/mlflow_pending.jsonl"))

    parents, children = _runs(client, name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(c.data.tags["tgo.trial_id"] for c in children) == sorted(trials)
    history = {}
    for child in children:
        assert child.info.status == "FINISHED" and child.data.tags["status"] == "finished"
        assert {"clean_acc", "robust_acc"} <= set(child.data.metrics)
        assert _steps(client, child.info.run_id) == [1, 2, 3, 4]   # all, and each once
        history[child.info.run_id] = len(client.get_metric_history(child.info.run_id,
                                                                   "train_loss"))
    front = [c for c in children if c.data.tags.get("pareto") == "true"]
    assert front and all(c.data.tags.get("tgo.model_logged") == "true" for c in front)
    names = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"pareto.json", "pareto.csv"} <= names

    again = _run([*TGO, "sweep", "sync", experiment], env=rig.env(), timeout=300)
    assert again.returncode == 0 and "synced 0 records" in again.stdout, again.stdout
    for run_id, count in history.items():
        assert len(client.get_metric_history(run_id, "train_loss")) == count


# ------------------------------------------------------------------------------ point 2


def test_driver_sigkill_then_resume_continues_the_same_sweep(rig, tmp_path):
    name = "resume"
    spec = _write_spec(rig, tmp_path, name, epochs=4, num_samples=6,
                       sampler={"type": "nsga2", "seed": 0, "population_size": 2},
                       pruner={"type": "mo_asha", "eta": 2, "grace_epochs": 1})
    log = tmp_path / "driver.log"
    client = rig.client()
    proc = _start_driver(rig, spec, log)

    def two_ended_one_running():
        _, children = _runs(client, name)
        ended = [c for c in children if c.data.tags.get("status", "running") != "running"]
        running = [c for c in children if c.data.tags.get("status") == "running"
                   and _steps(client, c.info.run_id)]
        return (ended, running) if len(ended) >= 2 and running else None

    ended, running = _poll("two ended trials and a running one", two_ended_one_running,
                           proc=proc, log=log)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    experiment = tmp_path / "runs" / name
    ended_ids = {c.data.tags["tgo.trial_id"]: c.info.run_id for c in ended}
    ended_history = {rid: _steps(client, rid) for rid in ended_ids.values()}
    known_before = len(_study(experiment).trials)

    resumed = _run([*TGO, "sweep", "resume", experiment, "--address", rig.state["address"]],
                   env=rig.env(), timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    line = next(l for l in resumed.stdout.splitlines() if "restored the search" in l)
    assert "NSGAIISampler study of" in line and "pruner:" in line, line
    restored_trials = int(line.split("study of ")[1].split()[0])
    assert restored_trials >= known_before >= 3     # not a fresh (random) search, ray#30861
    rung_records = int(line.split("pruner: ")[1].split()[0])
    assert rung_records >= 2                         # the rungs were rebuilt

    parents, children = _runs(client, name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    # A trial the driver started after Ray last saved its state is unknown to the resumed
    # sweep: its child run is closed as lost, never left RUNNING, never rerun.
    lost = [c for c in children if "lost:" in c.data.tags.get("status", "")]
    assert all(c.info.status == "KILLED" for c in lost)
    # One that had even ended by then keeps its record, tagged as outside the sweep.
    orphans = [c for c in children if "tgo.orphan" in c.data.tags]
    assert all(c.data.tags.get("pareto", "false") == "false" for c in orphans)
    children = [c for c in children if c not in lost and c not in orphans]
    assert len(children) == 6
    assert len({c.data.tags["tgo.trial_id"] for c in children}) == 6
    for trial_id, run_id in ended_ids.items():       # ended trials keep their record:
        assert _steps(client, run_id) == ended_history[run_id]   # nothing logged again
        # (Ray itself runs a trial again when it ended in the <= 2 s between Ray's last
        # state snapshot and the kill; its first MLflow record stands.)
    for child in children:                          # no epoch logged twice
        steps = _steps(client, child.info.run_id)
        assert steps == sorted(set(steps)) and steps[0] == 1
    study = _study(experiment)
    assert type(study.sampler).__name__ == "NSGAIISampler"
    assert len(study.trials) == 6
    assert {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED", "FAIL"}


# ------------------------------------------------------------------------------ point 1


def _raylet_of(rig: Rig, node_name: str) -> int:
    """PID of the raylet of the node named ``node_name`` (``worker-1``)."""
    node = next(n for n in rig.state["nodes"] if n["name"] == node_name)
    table = local_cluster._proc_table()
    for pid in local_cluster._descendants({node["pid"]}, table):
        if "/raylet/raylet" in local_cluster._cmdline(pid):
            return pid
    raise AssertionError(f"no raylet under {node_name} (pid {node['pid']})")


def test_a_killed_worker_node_costs_only_the_epoch_in_flight(rig, tmp_path):
    name = "workerkill"
    spec = _write_spec(rig, tmp_path, name, epochs=6, num_samples=3, max_failures=2)
    log = tmp_path / "driver.log"
    client = rig.client()
    nodes = {}   # Ray node id -> the worker's resource name
    for node in local_cluster.alive_nodes(rig.state):
        for resource in ("node_worker_1", "node_worker_2"):
            if resource in node.get("resources_total", {}):
                nodes[node["node_id"]] = resource
    assert len(nodes) == 2, nodes
    proc = _start_driver(rig, spec, log)

    def victim():
        _, children = _runs(client, name)
        for child in children:
            node = nodes.get(child.data.tags.get("ray.node_id"))
            if node and child.data.tags.get("status") == "running" and \
                    len(_steps(client, child.info.run_id)) >= 2:
                return child, node
        return None

    child, resource = _poll("a trial with 2 epochs on a worker", victim, proc=proc, log=log)
    node_name = "worker-1" if resource == "node_worker_1" else "worker-2"
    os.kill(_raylet_of(rig, node_name), signal.SIGKILL)
    out = _wait(proc, log, timeout=900)
    assert proc.returncode == 0, out[-3000:]
    assert "retries it from its last checkpoint" in out

    parents, children = _runs(client, name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 3                      # the retried trial kept its child run
    for run in children:
        assert run.data.tags["status"] == "finished", run.data.tags
        assert _steps(client, run.info.run_id) == [1, 2, 3, 4, 5, 6]  # from the checkpoint,
        # not from scratch: a restart would log epochs 1-2 a second time
    killed = next(c for c in children if c.info.run_id == child.info.run_id)
    assert killed.data.tags["tgo.retries"] == "1"
    assert nodes.get(killed.data.tags["ray.node_id"]) != resource   # it moved
