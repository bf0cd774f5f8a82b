"""The service end to end, as CI runs it: a real multi-node Ray cluster (head + 2 workers on
loopback, token auth on), a real `mlflow server` (on SQLite, then on PostgreSQL), `tgo submit`
of the digits sweep, then `tgo pick --register` and loading the registered model.

Marked slow (about 2-5 minutes on 2 cores). Every process it starts is stopped at the end
by PID (cluster/local_cluster.py stop, mlflow/stop.sh)."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from ports import free_ports

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster" / "local_cluster.py"
SERVE, STOP = ROOT / "mlflow" / "serve.sh", ROOT / "mlflow" / "stop.sh"
TGO = [sys.executable, "-m", "tune.cli"]


def _run(cmd, timeout=600, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT, **kw)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(request):
    """(dashboard URL, token file, MLflow URL) of a fresh cluster + server; both stopped
    at teardown, and every PID they recorded must be gone. The server's store is SQLite
    (1 worker) or a database of the private PostgreSQL (4 workers, password in PGPASSFILE)."""
    server_env, server_args = dict(os.environ), []
    if request.param == "postgresql":
        pg = request.getfixturevalue("postgres")
        server_env["PGPASSFILE"] = str(pg.passfile)
        server_args = ["--backend-store-uri", pg.fresh_database("svc"), "--workers", 4]
    # Ray's socket paths must stay under 107 bytes: a short folder, not pytest's tmp_path.
    root = Path(tempfile.mkdtemp(prefix="tgosvc"))
    cluster_dir, mlflow_dir = root / "rc", root / "mlflow"
    port, dashboard, client, mlflow_port = free_ports(4)
    pids: list[int] = []
    try:
        started = _run([sys.executable, CLUSTER, "start", "--dir", cluster_dir, "--workers", 2,
                        "--port", port, "--dashboard-port", dashboard, "--client-port", client,
                        "--timeout", 300], timeout=900)
        assert started.returncode == 0, started.stdout + started.stderr
        state = json.loads((cluster_dir / "cluster.json").read_text())
        pids += [n["pid"] for n in state["nodes"]] + [r["pid"] for r in state.get("pids", [])]
        served = _run(["bash", SERVE, "--data-dir", mlflow_dir, "--port", mlflow_port, "--wait",
                       "--wait-timeout", 180, *server_args], timeout=260, env=server_env)
        assert served.returncode == 0, served.stdout + served.stderr
        pids.append(int((mlflow_dir / "mlflow-server.pid").read_text()))
        yield (f"http://127.0.0.1:{dashboard}", cluster_dir / "auth_token",
               f"http://127.0.0.1:{mlflow_port}")
    finally:
        _run(["bash", STOP, "--data-dir", mlflow_dir], timeout=120)
        if (cluster_dir / "cluster.json").exists():
            _run([sys.executable, CLUSTER, "stop", "--dir", cluster_dir], timeout=300)
        left = [p for p in pids if _alive(p)]
        assert not left, f"processes left running: {left}"


def test_submit_browse_pick_and_load(service, tmp_path, monkeypatch):
    dashboard, token_file, mlflow_url = service
    spec = yaml.safe_load((ROOT / "examples" / "digits-quick.yaml").read_text())
    spec.update(name="ci-service", epochs=2, num_samples=4, max_concurrent=3,
                pruner={"type": "none"}, storage_path="runs",
                evaluation={"eps": 0.1, "steps": 3, "max_examples": 120})
    spec["train"] = {**spec["train"], "val_subset": 64, "val_steps": 2}
    spec_file = tmp_path / "ci-service.yaml"
    spec_file.write_text(yaml.safe_dump(spec))

    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")}
    submitted = _run(TGO + ["submit", spec_file, "--address", dashboard, "--token-file",
                            token_file, "--tracking-uri", mlflow_url, "--wait"],
                     timeout=1500, env=env)
    assert submitted.returncode == 0, submitted.stdout[-4000:] + submitted.stderr[-4000:]
    assert "SUCCEEDED" in submitted.stdout

    from mlflow import MlflowClient
    client = MlflowClient(tracking_uri=mlflow_url)
    exp = client.get_experiment_by_name(spec["name"])
    runs = client.search_runs([exp.experiment_id], max_results=50)
    parents = [r for r in runs if r.data.tags.get("tgo.kind") == "sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == 4
    nodes = {c.data.tags.get("ray.node_id") for c in children} - {None}
    assert len(nodes) >= 2, f"every trial ran on one node: {nodes}"
    assert any(c.data.tags.get("pareto") == "true" for c in children)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_url)
    picked = _run(TGO + ["pick", spec["name"], "--tracking-uri", mlflow_url,
                         "--require", "clean_acc>=0", "--maximize", "robust_acc",
                         "--register", "tgo-ci-digits", "--out", tmp_path / "deploy.yaml"],
                  timeout=600, env={**env, "MLFLOW_TRACKING_URI": mlflow_url})
    assert picked.returncode == 0, picked.stdout[-3000:] + picked.stderr[-3000:]
    deploy = yaml.safe_load((tmp_path / "deploy.yaml").read_text())
    assert "tgo-ci-digits" in json.dumps(deploy)

    import mlflow.pytorch
    import torch
    model = mlflow.pytorch.load_model("models:/tgo-ci-digits@deploy")
    assert model(torch.rand(3, 1, 8, 8)).shape == (3, 10)
