"""``tgo submit`` / ``tgo jobs`` against REAL single-node Ray heads on loopback.

Each head is ``ray start --head --block`` with its own ports, ``--temp-dir`` and ``HOME``
(so ``~/.ray/auth_token`` of the machine is never read or written), started in a session of
its own; teardown stops exactly the processes of that head's process tree, by PID. Two
heads run one after the other: one with token authentication off (the shipped working
directory is inspected there) and one with it on (``RAY_AUTH_MODE=token``), where the tiny
digits sweep is submitted end to end.

Run inside the loopback namespace (Ray listens on every interface):
    unshare -n -p -f --mount-proc bash -c 'ip link set lo up; cd /work/main && \\
        .venv/bin/python -m pytest tests/test_jobs.py -q -x'
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tune.cli import main
from tune import jobs
from tune.jobs import JobAuthError, JobError, JobsClient
from tune.spec import SpecError

pytestmark = [pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy"),
              pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")]

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TOKEN = "tgo-test-token-0123456789abcdef0123456789abcdef"
_AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- process tree


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) of every live process visible here (zombies left
    out: they have exited and only wait to be reaped)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] not in ("Z", "X"):
            table[int(entry.name)] = (int(fields[1]), fields[19])
    return table


def _tree(root: int) -> dict[int, str]:
    """pid -> start time of ``root`` and all its descendants."""
    table = _proc_table()
    found = {root: table[root][1]} if root in table else {}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, start) in table.items():
            if ppid in found and pid not in found:
                found[pid] = start
                grew = True
    return found


class RayHead:
    """``ray start --head --block`` on loopback; :meth:`stop` ends exactly its processes."""

    def __init__(self, folder: Path, *, auth: bool) -> None:
        self.folder = folder
        # Ray's unix sockets live under --temp-dir and must fit in 107 bytes: tmp_path is
        # too deep, so a short folder of the system temp dir, removed in stop().
        self.temp_dir = Path(tempfile.mkdtemp(prefix="tgoray"))
        self.port, self.dashboard_port = _free_port(), _free_port()
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        self.token_file = folder / "token"
        self.token_file.write_text(TOKEN)
        home = folder / "home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in _AUTH_VARS}
        env.update(HOME=str(home), PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
                   RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token" if auth else "disabled")
        if auth:
            env["RAY_AUTH_TOKEN_PATH"] = str(self.token_file)
        command = [str(VENV_BIN / "ray"), "start", "--head", "--block",
                   "--node-ip-address", "127.0.0.1", "--port", str(self.port),
                   "--dashboard-host", "127.0.0.1", "--dashboard-port", str(self.dashboard_port),
                   "--ray-client-server-port", str(_free_port()),
                   "--dashboard-agent-listen-port", str(_free_port()),
                   "--num-cpus", "2", "--temp-dir", str(self.temp_dir),
                   "--disable-usage-stats"]
        self.log = open(folder / "head.log", "w")
        self.process = subprocess.Popen(command, env=env, cwd=folder, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(auth)

    def _wait_ready(self, auth: bool, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        request = urllib.request.Request(f"{self.address}/api/jobs/",
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"ray start exited: {(self.folder / 'head.log').read_text()}")
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"the Ray head did not answer in {timeout_s} s")

    def stop(self) -> dict[int, str]:
        """SIGTERM ``ray start --block`` (it stops the processes it started, in order), then
        SIGKILL whatever of its process tree, recorded before, is still there.

        Returns the recorded processes (pid -> start time).
        """
        tree = _tree(self.process.pid)
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while _alive(tree) and time.monotonic() < deadline:
            self.process.poll()  # reap `ray start`, our child
            time.sleep(0.5)
        for pid in _alive(tree):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while _alive(tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self.log.close()
        if not _alive(tree):
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        return tree


def _alive(tree: dict[int, str]) -> list[int]:
    """The recorded processes still running (same pid AND start time: no reused pid)."""
    table = _proc_table()
    return [pid for pid, start in tree.items() if pid in table and table[pid][1] == start]


@pytest.fixture
def client_env(tmp_path, monkeypatch):
    """This process as a client machine: no Ray token anywhere unless a test puts one."""
    for name in _AUTH_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "client-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return home


# ----------------------------------------------------------------------------- no Ray needed


def test_token_sources_in_rays_order(tmp_path, client_env):
    file = tmp_path / "t"
    file.write_text(" from-file \n")
    env = {"RAY_AUTH_TOKEN": "from-env", "RAY_AUTH_TOKEN_PATH": str(file)}
    assert jobs.resolve_token(file, env).value == "from-file"
    assert jobs.resolve_token(file, env).source == f"--token-file {file}"
    assert jobs.resolve_token(None, env).value == "from-env"
    assert jobs.resolve_token(None, {"RAY_AUTH_TOKEN_PATH": str(file)}).value == "from-file"
    assert jobs.resolve_token(None, {}) is None
    (client_env / ".ray").mkdir()
    (client_env / ".ray" / "auth_token").write_text("from-home")
    token = jobs.resolve_token(None, {})
    assert (token.value, token.source) == ("from-home", "~/.ray/auth_token")
    assert "from-home" not in repr(token)  # the value never prints
    with pytest.raises(JobAuthError, match="token_file: expected a readable file"):
        jobs.resolve_token(tmp_path / "missing", {})
    with pytest.raises(JobAuthError, match="RAY_AUTH_TOKEN_PATH: expected a readable file"):
        jobs.resolve_token(None, {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(JobAuthError, match="the empty file"):
        jobs.resolve_token(tmp_path / "empty", {})


def test_tracking_uri_must_be_reachable_from_the_cluster():
    with pytest.raises(ValueError, match="mlflow.tracking_uri: expected an MLflow store the "
                                         "Ray cluster can reach") as info:
        jobs.submission_tracking_uri("sqlite:////home/me/mlflow.db", None)
    assert "--tracking-uri http://HOST:5000" in str(info.value)
    with pytest.raises(ValueError):
        jobs.submission_tracking_uri("/home/me/mlruns", None)
    assert jobs.submission_tracking_uri("http://mlflow:5000", None) == "http://mlflow:5000"
    assert jobs.submission_tracking_uri("sqlite:///a.db", "http://m:5000") == "http://m:5000"


def test_runtime_env_ships_the_repository_without_heavy_folders():
    env = jobs.project_runtime_env()
    assert env["working_dir"] == str(ROOT)
    for name in (".git", ".venv", "data", "runs", "out", "mlruns", "mlartifacts", "mlflow.db",
                 "*.pt", "__pycache__"):
        assert name in env["excludes"]
    assert "pip" not in env and env["env_vars"]["OMP_NUM_THREADS"] == "1"
    with_pip = jobs.project_runtime_env(pip=True, env_vars={"A": "1"})
    locked = [l for l in (ROOT / "requirements.lock").read_text().splitlines()
              if l and not l.startswith("#")]
    assert "torch==2.14.1" in with_pip["pip"] and with_pip["env_vars"]["A"] == "1"
    assert all("==" in r for r in with_pip["pip"])               # the lock, pinned
    assert set(locked) - set(with_pip["pip"]) == {next(l for l in locked
                                                       if l.startswith("ray=="))}


def test_address_and_default(client_env, monkeypatch):
    assert jobs.default_address({}) == "http://127.0.0.1:8265"
    assert jobs.default_address({"RAY_ADDRESS": "http://head:8265"}) == "http://head:8265"
    assert jobs.default_address({"RAY_ADDRESS": "auto"}) == "http://127.0.0.1:8265"
    with pytest.raises(JobError, match="address: expected the Ray dashboard URL"):
        JobsClient("127.0.0.1:8265")
    port = _free_port()
    with pytest.raises(JobError, match=f"no Ray dashboard answers at http://127.0.0.1:{port}"):
        JobsClient(f"http://127.0.0.1:{port}", timeout_s=2)


def test_parent_run_of_a_stopped_or_failed_job_is_closed(tmp_path):
    from types import SimpleNamespace

    from tune.tracking import SweepTracker

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    parents = []
    for name in ("s0", "s1"):
        tracker = SweepTracker(uri, "jobs", name, "h", {}, git_commit="x",
                               objectives=[("clean_acc", "max")])
        parents.append(tracker.start())  # RUNNING, as a submitted job leaves it
    client = MlflowClient(uri)
    info = [SimpleNamespace(metadata={"tgo.tracking_uri": uri, "tgo.parent_run_id": run_id})
            for run_id in parents]
    assert jobs.close_parent_run(info[0], "STOPPED") == "KILLED"
    assert jobs.close_parent_run(info[1], "FAILED") == "FAILED"
    assert [client.get_run(r).info.status for r in parents] == ["KILLED", "FAILED"]
    assert jobs.close_parent_run(info[0], "STOPPED") is None  # no longer RUNNING
    assert jobs.close_parent_run(SimpleNamespace(metadata={}), "FAILED") is None
    client.update_run(parents[0], status="RUNNING")
    assert jobs.close_parent_run(info[0], "SUCCEEDED") is None  # the sweep closes its own
    assert client.get_run(parents[0]).info.status == "RUNNING"


def _tiny_spec(folder: Path, filename: str = "jobs-tiny.yaml", **changes) -> Path:
    spec = {"name": "jobs-tiny", "dataset": "digits", "model": "digits_cnn", "epochs": 1,
            "train": {"batch_size": 64, "val_subset": 32, "val_steps": 1, "device": "cpu"},
            "space": {"margin_weight": {"type": "choice", "values": [0.0, 0.5]},
                      "noise_scale": {"type": "choice", "values": [0.0, 0.1]}},
            "objectives": {"clean_acc": "max", "robust_acc": "max"},
            "sampler": {"type": "random", "seed": 0}, "pruner": {"type": "none"},
            "num_samples": 2, "max_concurrent": 2, "resources": {"cpu": 1},
            "evaluation": {"attack": "fgsm", "eps": 0.05, "eot_samples": 1,
                           "max_examples": 32}, **changes}
    path = folder / filename
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_spec_and_store_are_checked_before_any_request(tmp_path, client_env, capsys):
    dead = f"http://127.0.0.1:{_free_port()}"  # nothing listens: a request would fail
    bad = _tiny_spec(tmp_path, "bad.yaml", num_samples=0)
    with pytest.raises(SpecError, match="num_samples"):
        jobs.submit_sweep(bad, address=dead)
    good = _tiny_spec(tmp_path)  # no mlflow section: the default local sqlite store
    with pytest.raises(ValueError, match="mlflow.tracking_uri: expected an MLflow store"):
        jobs.submit_sweep(good, address=dead)
    assert main(["submit", str(bad), "--address", dead]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "num_samples" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- auth off


def test_cluster_without_auth_ships_the_working_dir(tmp_path, client_env, monkeypatch):
    assert (ROOT / ".git").exists() and (ROOT / ".venv").exists()  # there to be left out
    head = RayHead(tmp_path, auth=False)
    try:
        monkeypatch.setenv("RAY_AUTH_TOKEN", "never-sent")
        client = JobsClient(head.address)
        assert client.auth_mode == "disabled" and client.token is None
        probe = ("python -c \"import json, os; print('LISTING', json.dumps({'top': "
                 "sorted(os.listdir('.')), 'pycache': sum('__pycache__' in d for _, d, _ in "
                 "os.walk('.')), 'pt': sum(f.endswith('.pt') for _, _, fs in os.walk('.') "
                 "for f in fs)}))\"")
        job = client.submit(probe, jobs.project_runtime_env(), submission_id="listing")
        assert client.wait(job, timeout_s=120) == "SUCCEEDED", client.logs(job)
        line = next(x for x in client.logs(job).splitlines() if x.startswith("LISTING "))
        shipped = json.loads(line[len("LISTING "):])
        assert {"tgo", "tune", "pyproject.toml", "tests"} <= set(shipped["top"])
        for left_out in (".git", ".venv", "mlflow.db", "mlruns", "runs", "data", "out"):
            assert left_out not in shipped["top"]
        assert shipped["pycache"] == 0 and shipped["pt"] == 0
    finally:
        stopped = head.stop()
    assert len(stopped) > 3 and _alive(stopped) == []  # gcs, raylet, dashboard, ... all gone


# ----------------------------------------------------------------------------- auth on


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    head = RayHead(tmp_path_factory.mktemp("secured"), auth=True)
    yield head
    assert _alive(head.stop()) == []


def test_client_without_token_gets_a_clear_error(secured, client_env, capsys):
    with pytest.raises(JobAuthError) as info:
        JobsClient(secured.address)
    message = str(info.value)
    assert f"the Ray cluster at {secured.address} requires an authentication token" in message
    for hint in ("--token-file", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token",
                 "ray get-auth-token"):
        assert hint in message
    assert main(["jobs", "list", "--address", secured.address]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the Ray cluster at {secured.address} requires")
    assert "Traceback" not in err


def test_wrong_token_is_rejected_clearly(secured, client_env, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token")
    with pytest.raises(JobAuthError, match=f"rejected the token from --token-file {wrong}"):
        JobsClient(secured.address, token_file=wrong)


def test_token_from_env_or_default_file(secured, client_env, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
    assert JobsClient(secured.address).token.source == "$RAY_AUTH_TOKEN"
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    (client_env / ".ray").mkdir()
    (client_env / ".ray" / "auth_token").write_text(TOKEN + "\n")
    client = JobsClient(secured.address)
    assert client.auth_mode == "token" and client.token.source == "~/.ray/auth_token"
    assert isinstance(client.list(), list)


def test_submit_sweep_runs_and_jobs_commands_report_it(secured, client_env, tmp_path, capsys):
    spec = _tiny_spec(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    token = ["--address", secured.address, "--token-file", str(secured.token_file)]
    code = main(["submit", str(spec), *token, "--tracking-uri", uri, "--wait"])
    out = capsys.readouterr().out
    assert code == 0, out
    job_id = next(line.split()[-1] for line in out.splitlines() if line.startswith("job id:"))
    assert job_id.startswith("tgo-jobs-tiny-")
    assert f"Ray dashboard:  {secured.address}/#/jobs/{job_id}" in out
    parent = out.split("MLflow run:     parent run ")[1].split()[0]
    assert f"job {job_id}: SUCCEEDED" in out
    assert "sweep 'jobs-tiny': 2 trials, 2 finished" in out  # the job's own log, followed

    client = MlflowClient(uri)
    run = client.get_run(parent)
    assert run.info.status == "FINISHED" and run.data.tags["tgo.sweep_name"] == "jobs-tiny"
    assert run.data.params["storage_path"].endswith(f"runs/{job_id}")
    children = client.search_runs([run.info.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent}'")
    assert len(children) == 2
    assert all(c.info.status == "FINISHED" and "clean_acc" in c.data.metrics for c in children)
    assert any(c.data.tags.get("pareto") == "true" for c in children)

    assert main(["jobs", "list", *token]) == 0
    listing = capsys.readouterr().out
    row = next(line for line in listing.splitlines() if line.startswith(job_id))
    assert "SUCCEEDED" in row and "jobs-tiny" in row
    assert main(["jobs", "status", job_id, *token]) == 0
    status = capsys.readouterr().out
    assert "status:     SUCCEEDED" in status and "sweep:      jobs-tiny" in status
    assert f"parent run {parent}" in status
    assert main(["jobs", "logs", job_id, *token]) == 0
    logs = capsys.readouterr().out
    assert "sweep 'jobs-tiny' (spec " in logs and "Pareto front" in logs

    # the sweep the job left is one `tgo pick` can deploy from
    deploy = tmp_path / "deploy.yaml"
    assert main(["pick", "jobs-tiny", "--tracking-uri", uri, "--maximize", "robust_acc",
                 "--register", "jobs-tiny-model", "--out", str(deploy)]) == 0
    picked = capsys.readouterr().out
    assert "chosen: trial " in picked and "verified models:/jobs-tiny-model@deploy" in picked
    doc = yaml.safe_load(deploy.read_text())
    assert doc["sweep"]["parent_run_id"] == parent
    assert doc["sweep"]["objectives"] == {"clean_acc": "max", "robust_acc": "max"}
    assert doc["config"]["epochs"] == 1 and doc["config"]["val_subset"] == 32


def test_stop_a_running_job_and_unknown_ids(secured, client_env, capsys):
    token = ["--address", secured.address, "--token-file", str(secured.token_file)]
    client = JobsClient(secured.address, token_file=secured.token_file)
    job = client.submit("echo started; sleep 300", {}, submission_id="sleeper")
    deadline = time.monotonic() + 60
    while client.status(job) != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert main(["jobs", "stop", job, *token]) == 0
    assert "job sleeper: STOPPED" in capsys.readouterr().out
    assert client.status(job) == "STOPPED"
    assert main(["jobs", "status", "no-such-job", *token]) == 2
    err = capsys.readouterr().err
    assert "error: job: no job 'no-such-job' on the Ray cluster" in err
    assert main(["jobs", "logs", "no-such-job", "--follow", *token]) == 2
    assert "error: job: no job 'no-such-job'" in capsys.readouterr().err
