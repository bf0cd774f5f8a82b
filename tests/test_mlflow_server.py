"""mlflow/serve.sh and mlflow/stop.sh: a real MLflow tracking server on loopback.

The module fixture starts the server once (SQLite store and proxied artifacts in a temporary
folder, a free 127.0.0.1 port) and stops it in teardown, checking that every process of its
process group is gone. Run inside a loopback-only namespace like every server test:
``unshare -n -p -f --mount-proc bash -c 'ip link set lo up; .venv/bin/python -m pytest
tests/test_mlflow_server.py -q'``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SERVE = REPO / "mlflow" / "serve.sh"
STOP = REPO / "mlflow" / "stop.sh"
START_TIMEOUT_S = 150  # MLflow 3 needs 10-40 s to answer on 2 shared cores


# ----------------------------------------------------------------------------- helpers
# (test_mlflow_ui.py imports free_port, serve, stop and group_members)


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def group_members(pgid: int) -> list[int]:
    """PIDs of the live (not zombie) processes whose process group is ``pgid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(stat.parent.name))
    return found


def serve(data_dir: Path, port: int, *extra: str) -> subprocess.CompletedProcess:
    """Run ``mlflow/serve.sh --wait`` for a server on 127.0.0.1:``port``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_BACKEND_STORE_URI", "MLFLOW_ARTIFACTS_DESTINATION", "MLFLOW_HOST",
                        "MLFLOW_PORT", "MLFLOW_PID_FILE", "MLFLOW_LOG_FILE", "MLFLOW_DATA_DIR")}
    return subprocess.run(["bash", str(SERVE), "--data-dir", str(data_dir), "--port", str(port),
                           "--wait", "--wait-timeout", str(START_TIMEOUT_S), *extra],
                          env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S + 30)


def stop(data_dir: Path) -> subprocess.CompletedProcess:
    """Run ``mlflow/stop.sh`` for the server started with ``data_dir``."""
    return subprocess.run(["bash", str(STOP), "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=90)


def _log_tail(data_dir: Path) -> str:
    log = data_dir / "mlflow-server.log"
    return log.read_text()[-3000:] if log.exists() else "(no log)"


# ----------------------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(url, data dir, pid) of a server started by serve.sh; stopped by stop.sh afterwards."""
    data_dir = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    started = serve(data_dir, port)
    pid_file = data_dir / "mlflow-server.pid"
    pid = int(pid_file.read_text()) if pid_file.exists() else None
    try:
        assert started.returncode == 0, (f"serve.sh exit {started.returncode}\n{started.stdout}"
                                         f"\n{started.stderr}\n{_log_tail(data_dir)}")
        url = f"http://127.0.0.1:{port}"
        assert f"MLflow tracking server: {url} (pid {pid})" in started.stdout
        yield url, data_dir, pid
    finally:
        stopped = stop(data_dir)
        assert stopped.returncode == 0, f"stop.sh: {stopped.stdout}\n{stopped.stderr}"
        assert pid is not None and group_members(pid) == [], "server processes left behind"
        assert not pid_file.exists()


def test_health_answers(server):
    url, _, _ = server
    with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
        assert response.status == 200
        assert response.read().strip() == b"OK"


def test_runs_in_its_own_process_group(server):
    _, _, pid = server
    assert os.getpgid(pid) == pid  # stop.sh signals exactly this group
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"server" in cmdline and any(part.endswith(b"mlflow") for part in cmdline)
    # --workers 1: the CLI, uvicorn, and no job-runner processes
    members = group_members(pid)
    assert 1 <= len(members) <= 4, members
    # the store URIs go by environment, so a database password never shows in `ps`
    for member in members:
        assert b"mlflow.db" not in Path(f"/proc/{member}/cmdline").read_bytes()


def _listeners(port: int) -> list[tuple[str, int]]:
    """(local address in /proc/net hex, socket inode) of the sockets listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, local_port = fields[1].rsplit(":", 1)
            if int(local_port, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                found.append((address, int(fields[9])))
    return found


def test_bound_to_loopback_only(server):
    url, _, pid = server
    port = int(url.rsplit(":", 1)[1])
    listeners = _listeners(port)
    assert listeners, f"nothing listens on port {port}"
    # 0100007F is 127.0.0.1 in /proc/net/tcp's byte order; 0.0.0.0 or :: would be all zeros
    assert [address for address, _ in listeners] == ["0100007F"] * len(listeners)
    # ... and the listening socket belongs to the server that serve.sh started
    owners = set()
    for member in group_members(pid):
        for fd in Path(f"/proc/{member}/fd").iterdir():
            try:
                owners.add(os.readlink(fd))
            except OSError:
                continue
    assert any(f"socket:[{inode}]" in owners for _, inode in listeners)


def test_client_logs_and_reads_back_over_http(server, tmp_path):
    from mlflow import MlflowClient

    url, data_dir, _ = server
    client = MlflowClient(tracking_uri=url)
    exp_id = client.create_experiment("server-probe")
    # proxied artifacts: the client uploads through the server, not to a path of its own
    assert client.get_experiment(exp_id).artifact_location.startswith("mlflow-artifacts:")
    run_id = client.create_run(exp_id, run_name="probe").info.run_id
    client.log_metric(run_id, "robust_acc", 0.625, step=3)
    note = tmp_path / "note.txt"
    note.write_text("threshold guarding\n")
    client.log_artifact(run_id, str(note))
    client.set_terminated(run_id)

    again = MlflowClient(tracking_uri=url).get_run(run_id)
    assert again.info.status == "FINISHED"
    assert again.data.metrics == {"robust_acc": 0.625}
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "robust_acc")] == \
        [(3, 0.625)]
    assert [a.path for a in client.list_artifacts(run_id)] == ["note.txt"]
    down = Path(client.download_artifacts(run_id, "note.txt", str(tmp_path / "down")))
    assert down.read_text() == "threshold guarding\n"
    stored = list((data_dir / "mlartifacts").rglob("note.txt"))
    assert len(stored) == 1 and stored[0].read_text() == "threshold guarding\n"
    assert (data_dir / "mlflow.db").is_file()


def test_second_server_on_the_same_port_is_refused(server, tmp_path):
    url, _, _ = server
    again = serve(tmp_path, int(url.rsplit(":", 1)[1]))
    assert again.returncode == 2
    assert "already in use" in again.stderr
    assert not (tmp_path / "mlflow-server.pid").exists()


def test_serve_rejects_a_bad_port(tmp_path):
    bad = serve(tmp_path, 70000)
    assert bad.returncode == 2
    assert "port: expected an integer in 1..65535, got '70000'" in bad.stderr


def test_stop_leaves_a_process_that_is_not_mlflow_alone(tmp_path):
    pid_file = tmp_path / "mlflow-server.pid"
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        pid_file.write_text(f"{sleeper.pid}\n")
        result = stop(tmp_path)
        assert result.returncode == 1
        assert "is not an MLflow server" in result.stderr
        assert sleeper.poll() is None  # still running
        assert not pid_file.exists()   # the stale record is gone
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stop_without_a_running_server_is_a_no_op(tmp_path):
    assert stop(tmp_path).returncode == 0  # no pid file at all
    dead = subprocess.Popen(["true"], start_new_session=True)
    dead.wait()
    (tmp_path / "mlflow-server.pid").write_text(str(dead.pid))
    result = stop(tmp_path)
    assert result.returncode == 0 and "is not running" in result.stdout
    assert not (tmp_path / "mlflow-server.pid").exists()


# ----------------------------------------------------------------------------- the folder


def test_import_mlflow_is_the_installed_package():
    import mlflow

    for path in (Path(mlflow.__file__), Path(subprocess.run(
            [sys.executable, "-c", "import mlflow; print(mlflow.__file__)"], cwd=REPO,
            capture_output=True, text=True, check=True).stdout.strip())):
        assert "site-packages" in path.parts, path
        assert not path.resolve().is_relative_to(REPO / "mlflow"), path


def test_mlflow_folder_holds_configuration_only():
    folder = REPO / "mlflow"
    python = [p for p in folder.rglob("*")
              if p.suffix in (".py", ".pyc") or p.name in ("__init__.py", "__pycache__")]
    assert python == []
    for script in (SERVE, STOP):
        assert script.is_file() and os.access(script, os.X_OK), script
