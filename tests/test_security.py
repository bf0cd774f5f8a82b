"""Security: loopback-only servers, Ray token auth, checkpoints that cannot run code, no
credential in anything a sweep logs, a job that ships the sources only.

Where another file already covers a point with the real parts, it is named here and not
repeated:

* MLflow server bound to 127.0.0.1 only: test_mlflow_server.py::test_bound_to_loopback_only
  (and the slow sweep test below starts its server without ``--host``);
* Ray dashboard / Jobs API token auth: test_cluster.py::test_dashboard_requires_the_token,
  test_jobs.py::test_client_without_token_gets_a_clear_error,
  ::test_wrong_token_is_rejected_clearly, ::test_token_from_env_or_default_file and
  ::test_submit_sweep_runs_and_jobs_commands_report_it (a sweep submitted with the token);
* cluster/runtime_env.yaml: test_cluster.py::test_runtime_env_file_ships_the_sources_and_nothing_else.

Run: bash .ci/loopback .venv/bin/python -m pytest tests/test_security.py -q
(the ``slow`` tests start a local Ray cluster, a Ray instance and an MLflow server).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Iterable

import pytest
from scripts import load_script
import torch
import yaml

from tgo import checkpoint
from tune.cli import main
from tgo.config import TrainConfig
from tune import jobs
from tune.redact import (SECRET_ENV_VARS, has_credentials, keep_credentials_out_of_ray_logs,
                         redact_uri)
from tune.spec import SpecError, SweepSpec
from ports import free_ports

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
linux_only = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs /proc")


def _tiny_spec(folder: Path, tracking_uri: str, **changes: Any) -> dict[str, Any]:
    """Two one-epoch trials of the digits SNN (a few seconds each on one core)."""
    return {"name": "sec-tiny", "dataset": "digits", "model": "digits_cnn", "epochs": 1,
            "train": {"batch_size": 128, "val_subset": 32, "val_steps": 1,
                      "val_eot_samples": 1, "device": "cpu"},
            "space": {"margin_weight": {"type": "choice", "values": [0.0, 0.5]},
                      "noise_scale": {"type": "choice", "values": [0.0, 0.1]}},
            "objectives": {"clean_acc": "max", "robust_acc": "max"},
            "sampler": {"type": "random", "seed": 0}, "pruner": {"type": "none"},
            "num_samples": 2, "max_concurrent": 2, "resources": {"cpu": 1},
            "evaluation": {"eps": 0.05, "steps": 2, "eot_samples": 1, "max_examples": 32},
            "mlflow": {"tracking_uri": tracking_uri, "experiment": "sec"},
            "storage_path": str(folder / "runs"), **changes}


def _secrets(monkeypatch) -> dict[str, str]:
    """Put a fresh, recognisable credential in every variable a sweep may read them from."""
    values = {var: f"{var.lower()}-{secrets.token_hex(8)}" for var in SECRET_ENV_VARS}
    values["MLFLOW_TRACKING_USERNAME"] = f"tgo-user-{secrets.token_hex(4)}"
    for var, value in values.items():
        monkeypatch.setenv(var, value)
    return values


def _leaks(text: str | bytes, values: Iterable[str]) -> list[str]:
    data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    return [v for v in values if v.encode() in data]


def _scan_tree(root: Path, values: Iterable[str]) -> dict[str, list[str]]:
    """Every file below ``root`` read as bytes (databases and pickles included)."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            hits = _leaks(path.read_bytes(), values)
            if hits:
                found[str(path)] = hits
    return found


# ----------------------------------------------------------------------------- loopback


def test_mlflow_serve_script_binds_loopback_by_default():
    text = (REPO / "mlflow" / "serve.sh").read_text()
    assert re.search(r'^host="\$\{MLFLOW_HOST:-127\.0\.0\.1\}"$', text, re.M)
    assert "0.0.0.0" not in re.sub(r"#.*", "", text.split("case \"$host\" in")[0])


def _local_cluster_module():
    return load_script("cluster/local_cluster.py", "local_cluster_script")


def test_local_cluster_nodes_bind_loopback():
    script = _local_cluster_module()
    assert script.HOST == "127.0.0.1"
    ns = script.build_parser().parse_args(["start"])
    assert ns.auth == "token"  # token authentication unless asked otherwise
    head = script._node_command("ray", ns, "head", "node_head", Path("/t/head"), True)
    worker = script._node_command("ray", ns, "worker-1", "node_worker_1", Path("/t/w1"), False)
    for cmd in (head, worker):
        assert cmd[cmd.index("--node-ip-address") + 1] == "127.0.0.1"
        assert not any("0.0.0.0" in part for part in cmd)
    assert head[head.index("--dashboard-host") + 1] == "127.0.0.1"
    assert worker[worker.index("--address") + 1] == f"127.0.0.1:{ns.port}"


def _ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        chain.append(pid)
        pid = int(text[text.rindex(")") + 2:].split()[1])
    return chain


def listening_addresses(roots: set[int]) -> dict[tuple[str, int], str]:
    """(hex local address from /proc/net, port) -> command, for every TCP socket listened on
    by a process that descends from one of ``roots``."""
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                address, port = fields[1].rsplit(":", 1)
                listening[int(fields[9])] = (address, int(port, 16))
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not roots & set(_ancestors(int(entry.name))):
            continue
        try:
            links = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
        except OSError:
            continue
        for link in links:
            inode = int(link[8:-1]) if link.startswith("socket:[") else None
            if inode in listening:
                found[listening[inode]] = command
    return found


# 127.0.0.1, and 127.0.0.1 mapped into IPv6 (::ffff:127.0.0.1), or ::1, in /proc/net's order
LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}

_CONNECT = r"""
import sys
import ray
try:
    ray.init(address=sys.argv[1], log_to_driver=False)
    print("ANSWER", ray.get(ray.remote(lambda: 6 * 7).remote(), timeout=120))
except Exception as exc:
    print("REFUSED", type(exc).__name__, exc)
"""


def _connect(address: str, env: dict[str, str]) -> str:
    proc = subprocess.run([PYTHON, "-c", _CONNECT, address], env=env, capture_output=True,
                          text=True, timeout=240)
    return proc.stdout + proc.stderr


@linux_only
@pytest.mark.slow
def test_local_cluster_listens_on_loopback_only_and_wants_the_token(tmp_path_factory):
    script = REPO / "cluster" / "local_cluster.py"
    folder = Path(tempfile.mkdtemp(prefix="tgosec"))  # short: Ray's socket paths live in it
    home = tmp_path_factory.mktemp("home")
    port, dashboard, client = free_ports(3)
    start = subprocess.run([PYTHON, str(script), "start", "--dir", str(folder), "--workers", "0",
                            "--port", str(port), "--dashboard-port", str(dashboard),
                            "--client-port", str(client), "--timeout", "240"],
                           capture_output=True, text=True, timeout=600)
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        state = json.loads((folder / "cluster.json").read_text())
        started = {n["pid"] for n in state["nodes"]} | {r["pid"] for r in state["pids"]}
        deadline = time.monotonic() + 90  # the Ray Client server may come up last
        while True:
            listening = listening_addresses(started)
            if {port, dashboard, client} <= {p for _, p in listening} \
                    or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert {port, dashboard, client} <= {p for _, p in listening}, listening
        wide = {k: v for k, v in listening.items() if k[0] not in LOOPBACK}
        assert not wide, f"listening beyond loopback: {wide}"

        base = {k: v for k, v in os.environ.items()
                if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH",
                             "RAY_ADDRESS")}
        base["HOME"] = str(home)  # no ~/.ray/auth_token to fall back on
        clients = {"none": base,
                   "wrong": {**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64},
                   "right": {**base, **state["auth_env"]}}
        address = state["address"]
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            said = dict(zip(clients, pool.map(lambda env: _connect(address, env),
                                              clients.values())))
        assert "ANSWER 42" in said["right"], said["right"][-2000:]
        for who in ("none", "wrong"):
            assert "REFUSED" in said[who] and "ANSWER" not in said[who], said[who][-2000:]
            assert "Authentication token is missing or incorrect" in said[who]
    finally:
        stop = subprocess.run([PYTHON, str(script), "stop", "--dir", str(folder)],
                              capture_output=True, text=True, timeout=300)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        shutil.rmtree(folder, ignore_errors=True)


# ----------------------------------------------------------------------------- checkpoints


class _RunsCode:
    """Unpickling this runs a shell command (what a malicious checkpoint would carry)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _real_checkpoint(path: Path) -> Path:
    config = TrainConfig(dataset="digits", timesteps=2, epochs=1)
    model = checkpoint.build_model(config, 10, [0.3], [0.4])
    return checkpoint.save(path, {"model": model.state_dict(), "config": config.to_dict(),
                                  "epoch": 1, "num_classes": 10, "in_shape": [1, 8, 8],
                                  "mean": [0.3], "std": [0.4]})


def test_checkpoint_with_a_pickle_payload_is_refused(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    good = _real_checkpoint(tmp_path / "good")
    state = torch.load(good, weights_only=True)
    evil = tmp_path / "evil.pt"
    torch.save({**state, "epoch": _RunsCode(marker)}, evil)  # otherwise a real checkpoint
    with pytest.raises(ValueError, match=r"checkpoint: refused .*evil\.pt.*posix\.system"):
        checkpoint.load(evil)
    with pytest.raises(ValueError, match="refused"):
        checkpoint.load_model(evil)
    assert main(["evaluate", str(evil), "--max-examples", "8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint: refused") and "Traceback" not in err
    assert "weights_only set to `False`" not in err  # torch's advice is not passed on
    assert not marker.exists(), "unpickling ran the payload"

    model, config = checkpoint.load_model(good)  # a real checkpoint still loads
    assert config.timesteps == 2 and model(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_every_torch_load_in_the_code_uses_weights_only():
    calls = []
    for path in [*(REPO / "tgo").rglob("*.py"), *(REPO / "tune").rglob("*.py")]:
        text = path.read_text()
        for match in re.finditer(r"torch\.load\(", text):
            depth = 0
            for end in range(match.end() - 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            calls.append((path.name, text[match.start():end + 1]))
    assert calls, "no torch.load found (the check would pass vacuously)"
    unsafe = [c for c in calls if "weights_only=True" not in c[1]]
    assert not unsafe, unsafe


# ----------------------------------------------------------------------------- credentials


def test_redact_uri_masks_user_info_and_secret_query_values():
    assert redact_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert redact_uri("sqlite:////tmp/x/mlflow.db") == "sqlite:////tmp/x/mlflow.db"
    assert redact_uri("https://alice:pw@host:5000/p") == "https://***@host:5000/p"
    assert redact_uri("https://tok@host") == "https://***@host"
    assert redact_uri("postgresql://u:p@db/mlflow?sslmode=require&password=x") == \
        "postgresql://***@db/mlflow?sslmode=require&password=***"
    assert redact_uri("s3://b/k?X-Amz-Signature=abc&X-Amz-Date=1") == \
        "s3://b/k?X-Amz-Signature=***&X-Amz-Date=1"
    assert redact_uri("http://[::1:5000@x") == "***@x"  # does not parse: masked anyway
    assert not has_credentials("http://127.0.0.1:5000/?experiment=1")
    assert has_credentials("http://a@h") and has_credentials("http://h/?token=1")


@pytest.mark.parametrize("uri", [
    "http://alice:{s}@127.0.0.1:5000",
    "https://{s}@mlflow.example.com",
    "https://mlflow.example.com/?token={s}",
    "postgresql://mlflow:{s}@db:5432/mlflow",
])
def test_a_tracking_uri_with_a_credential_is_refused_without_showing_it(uri, tmp_path,
                                                                        monkeypatch, capsys):
    secret = f"s3cret-{secrets.token_hex(6)}"
    uri = uri.format(s=secret)
    data = _tiny_spec(tmp_path, uri)
    with pytest.raises(SpecError) as info:
        SweepSpec.from_dict(data)
    assert info.value.problems[0].startswith("mlflow.tracking_uri: expected no credentials")
    assert "MLFLOW_TRACKING_PASSWORD" in str(info.value) and secret not in str(info.value)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the default store, from the environment
    with pytest.raises(SpecError, match=r"from \$MLFLOW_TRACKING_URI") as info:
        SweepSpec.from_dict({**data, "mlflow": {}}).resolved()  # read where a sweep starts
    assert secret not in str(info.value)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data))
    clean = tmp_path / "clean.yaml"
    clean.write_text(yaml.safe_dump(_tiny_spec(tmp_path, f"sqlite:///{tmp_path}/mlflow.db")))
    for argv in (["sweep", "run", str(spec)],
                 ["submit", str(clean), "--tracking-uri", uri, "--address", "http://127.0.0.1:9"]):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert "error: " in err and "mlflow.tracking_uri" in err and "Traceback" not in err
        assert secret not in out + err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.yaml", "spec.yaml"]


def test_ray_tune_no_longer_copies_aws_credentials_into_trials(monkeypatch):
    from ray.tune.execution import class_cache

    ray_default = set(class_cache.ENV_VARS_TO_PROPAGATE) | {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"}
    monkeypatch.setattr(class_cache, "ENV_VARS_TO_PROPAGATE", ray_default)  # restored after
    values = _secrets(monkeypatch)

    class Before:
        pass

    class After:
        pass

    copied = class_cache._ActorClassCache().get(Before)._default_options["runtime_env"]
    assert _leaks(json.dumps(copied), values.values())  # what Ray Tune does by itself
    keep_credentials_out_of_ray_logs()
    env = class_cache._ActorClassCache().get(After)._default_options["runtime_env"]
    assert env["env_vars"] and not _leaks(json.dumps(env), values.values())


class _FakeJobsClient:
    """Stands for the Ray Jobs API (test_jobs.py runs the real one): records what a
    submission would send to the cluster."""

    sent: list[dict[str, Any]] = []

    def __init__(self, address=None, *, token_file=None, environ=None) -> None:
        self.address = address or "http://127.0.0.1:8265"

    def submit(self, entrypoint, runtime_env, *, submission_id=None, metadata=None):
        self.sent.append({"entrypoint": entrypoint, "runtime_env": runtime_env,
                          "submission_id": submission_id, "metadata": metadata})
        return submission_id

    def dashboard_url(self, job_id: str) -> str:
        return f"{self.address}/#/jobs/{job_id}"


def test_a_submitted_job_carries_no_credential(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    values = _secrets(monkeypatch)
    monkeypatch.setattr(jobs, "JobsClient", _FakeJobsClient)
    _FakeJobsClient.sent = []
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(_tiny_spec(tmp_path, "http://127.0.0.1:9")))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    sweep = jobs.submit_sweep(spec, tracking_uri=uri, token_file=None)
    (sent,) = _FakeJobsClient.sent
    assert sent["runtime_env"]["env_vars"].keys() == {
        "OMP_NUM_THREADS", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", jobs.SPEC_ENV}
    assert not _leaks(json.dumps(sent, default=str), values.values())
    client = MlflowClient(uri)
    run = client.get_run(sweep.parent_run_id)
    logged = json.dumps([run.data.params, run.data.tags, list(run.data.metrics)])
    assert not _leaks(logged, values.values())
    assert not _scan_tree(tmp_path, values.values())


# ----------------------------------------------------------------------------- a real sweep


@pytest.fixture(params=["sqlite", "postgresql"])
def mlflow_server(request, tmp_path_factory, monkeypatch):
    """A real MLflow server from mlflow/serve.sh, started without --host: (url, data dir,
    pid, {name: secret} of the store, folders of the store to scan). On PostgreSQL the
    server reads the database password from PGPASSWORD, the variable a sweep must never
    log, and its URI carries none."""
    from test_mlflow_server import serve, stop

    data_dir = tmp_path_factory.mktemp("mlflow-server")
    (port,) = free_ports(1)
    store_secrets, store_dirs, args = {}, [], []
    if request.param == "postgresql":
        pg = request.getfixturevalue("postgres")
        monkeypatch.setenv("PGPASSWORD", pg.password)
        monkeypatch.delenv("PGPASSFILE", raising=False)
        # Its data folder and log; not its folder, which holds the password file.
        store_secrets, store_dirs = {"postgres password": pg.password}, [pg.data, pg.log]
        args = ["--backend-store-uri", pg.fresh_database("sec"), "--workers", "2"]
    started = serve(data_dir, port, *args)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert not _leaks(started.stdout + started.stderr, store_secrets.values())
        monkeypatch.delenv("PGPASSWORD", raising=False)   # the sweep gets its own below
        pid = int((data_dir / "mlflow-server.pid").read_text())
        yield f"http://127.0.0.1:{port}", data_dir, pid, store_secrets, store_dirs
    finally:
        assert stop(data_dir).returncode == 0


def _all_runs(client) -> list:
    from mlflow.entities import ViewType

    exps = client.search_experiments(view_type=ViewType.ALL)
    return client.search_runs([e.experiment_id for e in exps], run_view_type=ViewType.ALL,
                              max_results=1000)


@linux_only
@pytest.mark.slow
def test_a_real_sweep_logs_no_credential(mlflow_server, tmp_path, monkeypatch):
    """``tgo sweep run`` of 2 trials against a real MLflow server, with a secret in every
    variable a sweep reads credentials from (Ray's token one of them: the sweep's local Ray
    runs with token auth on that token). Not one secret in any param, tag, metric name or
    artifact of any run or logged model, in the server's store, in Ray's results, in the
    sweep's output or in Ray's own logs."""
    import mlflow
    from mlflow import MlflowClient

    url, data_dir, pid, store_secrets, store_dirs = mlflow_server
    port = int(url.rsplit(":", 1)[1])
    bound = [a for (a, p), _ in listening_addresses({pid}).items() if p == port]
    assert bound and set(bound) <= LOOPBACK, bound  # serve.sh's default host

    values = {**_secrets(monkeypatch), **store_secrets}
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(_tiny_spec(tmp_path, url)))
    ray_tmp = Path(tempfile.mkdtemp(prefix="tgosec"))  # short: Ray's socket paths live in it
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS",
                        "MLFLOW_TRACKING_URI")}
    env.update(HOME=str(home), RAY_TMPDIR=str(ray_tmp), RAY_USAGE_STATS_ENABLED="0")
    # A process of its own, as a user runs it (a local Ray keeps state in its driver process).
    try:
        proc = subprocess.run([PYTHON, "-m", "tune.cli", "sweep", "run", str(spec)], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=900)
        ray_logs = _scan_tree(ray_tmp, values.values())
        assert list(ray_tmp.rglob("runtime_env_agent.log"))
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    assert "sweep 'sec-tiny': 2 trials, 2 finished" in proc.stdout
    assert "Token authentication is enabled" in output  # Ray ran with the secret token

    client = MlflowClient(url)
    creds = client._tracking_client.store.get_host_creds()  # what the sweep's client sent
    assert creds.password == values["MLFLOW_TRACKING_PASSWORD"]
    runs = _all_runs(client)
    assert len(runs) == 3  # the parent and its 2 children
    seen = []
    for run in runs:
        seen += [*run.data.params.items(), *run.data.tags.items(), *run.data.metrics]
        folder = tmp_path / "artifacts" / run.info.run_id
        folder.mkdir(parents=True)
        client.download_artifacts(run.info.run_id, "", str(folder))
    models = client.search_logged_models([runs[0].info.experiment_id])
    assert models, "the front members' models were logged"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)  # MLflow's artifact repos use the global
    for model in models:
        seen += [*model.params.items(), *model.tags.items()]
        mlflow.artifacts.download_artifacts(artifact_uri=model.artifact_location,
                                            dst_path=str(tmp_path / "models" / model.model_id),
                                            tracking_uri=url)
    assert list((tmp_path / "models").rglob("MLmodel"))
    assert list((tmp_path / "artifacts").rglob("spec.yaml"))  # the parent's spec came down
    assert not _leaks(json.dumps(seen, default=str), values.values())
    downloaded = {**_scan_tree(tmp_path / "artifacts", values.values()),
                  **_scan_tree(tmp_path / "models", values.values())}
    assert not downloaded, downloaded
    assert not _scan_tree(data_dir, values.values())          # the server's db, files, log
    for path in store_dirs:                                   # PostgreSQL's data and log
        assert not (_scan_tree(path, values.values()) if path.is_dir()
                    else _leaks(path.read_bytes(), values.values())), path
    assert not _scan_tree(tmp_path / "runs", values.values())  # Ray's results and checkpoints
    assert not _leaks(output, values.values())                 # the sweep's own output
    # Ray Tune copies AWS keys into each trial's runtime_env, which Ray logs in clear:
    # tune.redact.keep_credentials_out_of_ray_logs() must run in the driver first.
    assert not ray_logs, ray_logs                              # Ray's own logs and files


# ----------------------------------------------------------------------------- runtime_env


def test_submit_runtime_env_ships_the_sources_and_nothing_else(tmp_path):
    from ray._private.runtime_env.packaging import create_package  # what Ray uploads

    project = tmp_path / "project"
    keep = ["pyproject.toml", "README.md", "tgo/__init__.py", "tgo/data.py", "tune/jobs.py",
            "tests/test_jobs.py", "examples/digits-quick.yaml", "cluster/runtime_env.yaml",
            "mlflow/serve.sh", "docs/CONTRACTS.md"]
    drop = [".git/config", ".git/objects/ab/cdef", ".venv/bin/python", "data/cifar-10/x.bin",
            "runs/digits-quick/trial_0/checkpoint_000/checkpoint.pt", "runs/mlflow-server/mlflow.db",
            "out/plain/checkpoint.pt", "out/plain/result.json", "mlruns/0/meta.yaml",
            "mlartifacts/1/model.pkl", "mlflow.db", "model.pt", "tune/checkpoint.pt",
            "tgo/__pycache__/data.cpython-311.pyc", "tgo_sweep.egg-info/PKG-INFO",
            ".pytest_cache/v/cache/lastfailed", "examples/data/extra.bin"]
    for name in keep + drop:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text("x")
    env = jobs.project_runtime_env(project)
    assert env["working_dir"] == str(project) and "pip" not in env
    package = tmp_path / "pkg.zip"
    create_package(str(project), package, include_gitignore=False, excludes=env["excludes"])
    shipped = {n.rstrip("/") for n in zipfile.ZipFile(package).namelist()}
    assert set(keep) <= shipped
    assert not shipped & set(drop), sorted(shipped & set(drop))
    # the repository's own list is the one tgo submit uses
    assert jobs.project_runtime_env()["excludes"] == list(jobs.EXCLUDES)
