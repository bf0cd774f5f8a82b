#!/usr/bin/env python3
"""A private PostgreSQL on one machine, for trying the MLflow server on PostgreSQL and for tests.

``start`` creates a database cluster in ``--dir`` (``initdb``), starts ``postgres`` on
127.0.0.1 (and a Unix socket in ``<dir>/sockets``), creates the database ``mlflow`` owned by the
user ``mlflow``, and writes the password of that user to a libpq password file
(``<dir>/pgpass``, mode 600). It prints what a client needs, with the password in the file
and never on screen or in the URI::

    export PGPASSFILE=/tmp/tgo-pg/pgpass
    export MLFLOW_BACKEND_STORE_URI=postgresql://mlflow@127.0.0.1:5432/mlflow

``stop`` stops exactly the ``postgres`` that ``start`` started: the PID in the data folder's
``postmaster.pid``, checked against the start time recorded in ``<dir>/postgres.json`` (a
reused PID is never hit): SIGINT (PostgreSQL's fast shutdown), then SIGQUIT and SIGKILL
after ``--timeout``. It never looks processes up by name.

PostgreSQL refuses to run as root. Run as root (CI), the server runs as the user
``--os-user`` (default ``postgres``, which Debian's ``postgresql`` package creates), and the
folder is made reachable for it. The binaries are found on ``PATH``, then in
``/usr/lib/postgresql/<newest>/bin`` (Debian), or in ``--bin-dir`` / ``$PG_BIN``.

Usage:
    python cluster/local_postgres.py start [--dir DIR] [--port 5432] [--password-file F]
    eval "$(python cluster/local_postgres.py env [--dir DIR])"
    python cluster/local_postgres.py stop [--dir DIR] [--timeout 30]

This is a script, not part of the ``tgo``/``tune`` packages; it needs only the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["PostgresError", "client_env", "create_database", "find_bin_dir", "main", "start",
           "stop"]

STATE_FILE = "postgres.json"
PASS_FILE = "pgpass"
HOST = "127.0.0.1"
USER = DATABASE = "mlflow"


class PostgresError(RuntimeError):
    """The server could not be set up, started or stopped; the message says why."""


def find_bin_dir(explicit: str | None = None) -> Path:
    """The folder holding ``initdb``, ``postgres`` and ``createdb``."""
    candidates = [explicit or os.environ.get("PG_BIN")]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                    key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    candidates += [str(p) for p in reversed(debian)]
    for folder in filter(None, candidates):
        if all((Path(folder) / tool).is_file() for tool in ("initdb", "postgres", "createdb")):
            return Path(folder)
    raise PostgresError("no PostgreSQL server binaries (initdb, postgres, createdb): install "
                        "them (Debian: apt-get install postgresql) or pass --bin-dir")


def default_dir() -> Path:
    return Path(os.environ.get("TGO_LOCAL_POSTGRES_DIR")
                or Path(tempfile.gettempdir()) / f"tgo-pg-{os.getuid()}")


def client_env(directory: Path) -> dict[str, str]:
    """What a client (``mlflow/serve.sh``) needs: the password file and the URI without one."""
    state = json.loads((directory / STATE_FILE).read_text())
    return {"PGPASSFILE": str(directory / PASS_FILE),
            "MLFLOW_BACKEND_STORE_URI": state["uri"]}


def _as_server_user(os_user: str) -> dict:
    """Popen arguments that run a command as the server's OS user (only when we are root)."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(os_user)
    except KeyError:
        raise PostgresError(f"PostgreSQL does not run as root, and there is no user "
                            f"{os_user!r} to run it as: create one or pass --os-user") from None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _run(cmd: list, as_user: dict, **kw) -> None:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **as_user, **kw)
    if proc.returncode != 0:
        raise PostgresError(f"{Path(str(cmd[0])).name} failed ({proc.returncode}): "
                            f"{(proc.stderr or proc.stdout).strip()[-1500:]}")


def _start_time(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _wait_ready(port: int, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PostgresError(f"postgres exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.2)
    raise PostgresError(f"postgres did not listen on {HOST}:{port} within {timeout:.0f} s")


def start(directory: Path, port: int, *, password_file: Path | None = None,
          os_user: str = "postgres", bin_dir: str | None = None, timeout: float = 60) -> dict:
    """Create (first time) and start the server; return its state (``uri``, ``pid``...)."""
    directory = directory.resolve()
    bins = find_bin_dir(bin_dir)
    as_user = _as_server_user(os_user)
    data, log = directory / "data", directory / "postgres.log"
    if (directory / STATE_FILE).exists() and _alive(json.loads((directory / STATE_FILE).read_text())):
        raise PostgresError(f"a server started from {directory} is already running; stop it first")
    with socket.socket() as s:
        if s.connect_ex((HOST, port)) == 0:
            raise PostgresError(f"port {port} on {HOST} is already in use; pick another with --port")
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o711)   # the server's user must reach its data folder inside
    passfile = directory / PASS_FILE
    if password_file is not None:
        password = Path(password_file).read_text().strip()
    elif passfile.exists():
        password = passfile.read_text().strip().rsplit(":", 1)[1]
    else:
        password = secrets.token_urlsafe(24)
    with os.fdopen(os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        # host:port:database:user:password, read by libpq
        f.write(f"{HOST}:*:*:{USER}:{password}\n")
    if not (data / "PG_VERSION").exists():
        data.mkdir(mode=0o700, exist_ok=True)
        pw = directory / "initdb.pw"
        with os.fdopen(os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(password + "\n")
        if as_user:
            os.chown(data, as_user["user"], as_user["group"])
            os.chown(pw, as_user["user"], as_user["group"])
        try:
            if as_user and not all(os.stat(d).st_mode & 0o001 for d in directory.parents):
                raise PostgresError(f"user {os_user} cannot reach {directory}: every folder "
                                    "above it must be searchable by others (chmod o+x)")
            _run([bins / "initdb", "-D", data, "-U", USER, "--pwfile", pw, "-E", "UTF8",
                  "--auth-host", "scram-sha-256", "--auth-local", "scram-sha-256"], as_user,
                 timeout=300)
        finally:
            pw.unlink()
    log.touch()
    sockets = directory / "sockets"
    sockets.mkdir(mode=0o700, exist_ok=True)
    if as_user:
        for path in (log, sockets):
            os.chown(path, as_user["user"], as_user["group"])
    with open(log, "a") as out:
        proc = subprocess.Popen([str(bins / "postgres"), "-D", str(data), "-p", str(port),
                                 "-h", HOST, "-k", str(sockets), "-c", "max_connections=200"],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, **as_user)
    state = {"pid": proc.pid, "start_time": _start_time(proc.pid), "port": port,
             "uri": f"postgresql://{USER}@{HOST}:{port}/{DATABASE}", "data": str(data),
             "log": str(log)}
    (directory / STATE_FILE).write_text(json.dumps(state, indent=1))
    _wait_ready(port, proc, log, timeout)
    try:
        create_database(directory, DATABASE, bin_dir=bin_dir)
    except PostgresError:
        stop(directory)
        raise
    return state


def create_database(directory: Path, name: str, *, bin_dir: str | None = None) -> str:
    """Create database ``name`` (owned by user mlflow) unless it exists; its URI."""
    directory = directory.resolve()
    state = json.loads((directory / STATE_FILE).read_text())
    env = {**os.environ, "PGPASSFILE": str(directory / PASS_FILE)}
    env.pop("PGPASSWORD", None)
    made = subprocess.run([str(find_bin_dir(bin_dir) / "createdb"), "-h", HOST, "-p",
                           str(state["port"]), "-U", USER, name],
                          capture_output=True, text=True, env=env, timeout=60)
    if made.returncode != 0 and "already exists" not in made.stderr:
        raise PostgresError(f"createdb {name} failed: {made.stderr.strip()[-1500:]}")
    return f"postgresql://{USER}@{HOST}:{state['port']}/{name}"


def _alive(state: dict) -> bool:
    """The recorded server still runs (not a zombie, and not a new process with its PID)."""
    return (state.get("start_time") is not None and not _zombie(state["pid"])
            and _start_time(state["pid"]) == state["start_time"])


def stop(directory: Path, timeout: float = 30) -> bool:
    """Stop the server started from ``directory``; False when none was running."""
    path = directory / STATE_FILE
    if not path.exists():
        return False
    state = json.loads(path.read_text())
    if not _alive(state):
        return False
    pid = state["pid"]
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(pid, sig) if sig == signal.SIGKILL else os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(state):
                return True
            time.sleep(0.2)
    raise PostgresError(f"postgres (pid {pid}) is still running after SIGKILL")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "env", "stop"):
        p = sub.add_parser(name)
        p.add_argument("--dir", type=Path, default=default_dir())
        if name == "start":
            p.add_argument("--port", type=int, default=5432)
            p.add_argument("--password-file", type=Path, default=None,
                           help="the password of user mlflow (default: a random one)")
            p.add_argument("--os-user", default="postgres",
                           help="the user the server runs as when this runs as root")
            p.add_argument("--bin-dir", default=None)
        if name == "stop":
            p.add_argument("--timeout", type=float, default=30)
    ns = parser.parse_args(argv)
    try:
        if ns.command == "start":
            state = start(ns.dir, ns.port, password_file=ns.password_file, os_user=ns.os_user,
                          bin_dir=ns.bin_dir)
            print(f"PostgreSQL on {HOST}:{ns.port} (pid {state['pid']}), data in {state['data']}",
                  file=sys.stderr)
            print(f"log: {state['log']}; stop with: {sys.argv[0]} stop --dir {ns.dir}",
                  file=sys.stderr)
        if ns.command in ("start", "env"):
            for key, value in client_env(ns.dir.resolve()).items():
                print(f"export {key}={value}")
        if ns.command == "stop":
            print("stopped" if stop(ns.dir.resolve(), ns.timeout) else "no server was running")
    except (PostgresError, FileNotFoundError) as exc:
        print(f"local_postgres.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
