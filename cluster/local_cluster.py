#!/usr/bin/env python3
"""A multi-node Ray cluster on one machine: a head and N workers on 127.0.0.1.

For trying ``tgo submit`` and for tests. Each node is its own ``ray start --block`` process,
in its own session, with its own ``--temp-dir`` (a shared temp dir broke the first
``working_dir`` job in probing) and a custom resource that names it (``node_head``,
``node_worker_1`` ... ``node_worker_N``), so a task or trial can tell which node ran it. The
dashboard, which serves the Job Submission API, listens on 127.0.0.1.

``stop`` stops exactly the processes ``start`` started: the process tree of each node, with
PIDs and start times (a reused PID is never hit) recorded in ``<dir>/cluster.json``; SIGTERM
first, SIGKILL after a timeout. It never runs ``ray stop``, which kills every Ray process on
the machine, and never kills by name.

Token authentication is on by default: ``start`` writes a token to ``<dir>/auth_token`` (kept
across restarts) and starts every node with ``RAY_AUTH_MODE=token`` and
``RAY_AUTH_TOKEN_PATH=<dir>/auth_token``. A client needs the same two variables; ``env``
prints them. ``--auth disabled`` starts an open cluster.

Usage:
    python cluster/local_cluster.py start [--workers 2] [--dir DIR] [--port 6379]
                                          [--dashboard-port 8265] [--head-cpus 1] [--worker-cpus 1]
    python cluster/local_cluster.py status [--dir DIR] [--json]
    eval "$(python cluster/local_cluster.py env [--dir DIR])"   # RAY_ADDRESS, auth for clients
    python cluster/local_cluster.py stop [--dir DIR] [--timeout 30]

The default DIR is ``$TGO_LOCAL_CLUSTER_DIR`` or ``<tmp>/tgo-ray-<uid>``: short (Ray's socket
paths under it must fit in 107 bytes) and outside the repository (so ``working_dir: .``
never ships it). Linux only (it reads /proc). Ray listens on every interface: where you can,
run it inside a loopback-only namespace (``unshare -n -p -f --mount-proc``, ``.ci/loopback``);
everything in that namespace dies with it.

This is a script, not part of the ``tgo``/``tune`` packages, and it does not import Ray.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["main", "start", "stop", "status", "client_env"]

STATE_FILE = "cluster.json"
TOKEN_FILE = "auth_token"
READY_LINE = "Ray runtime started."
HOST = "127.0.0.1"
# Ray's longest socket path below a node's temp dir is
# <temp_dir>/session_<YYYY-mm-dd_HH-MM-SS_ffffff>_<pid of the head's ray start>/sockets/
# plasma_store; AF_UNIX paths are limited to 107 bytes.
_AF_UNIX_MAX = 107


def _socket_tail() -> int:
    try:
        pid_digits = len(str(int(Path("/proc/sys/kernel/pid_max").read_text()) - 1))
    except (OSError, ValueError):
        pid_digits = 7
    return len("/session_2025-01-01_00-00-00_000000_/sockets/plasma_store") + pid_digits


class ClusterError(RuntimeError):
    """A cluster could not be started, inspected or stopped; the message says why."""


# --------------------------------------------------------------------------- processes


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, start time in clock ticks since boot, state letter) from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # exited while we looked
            continue
        fields = text[text.rindex(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), int(fields[19]), fields[0])
    return table


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:200]


def _alive(pid: int, start_time: int, table: dict | None = None) -> bool:
    """True when ``pid`` is the very process recorded (same start time) and not a zombie."""
    entry = (table if table is not None else _proc_table()).get(pid)
    return entry is not None and entry[1] == start_time and entry[2] != "Z"


def _descendants(roots: set[int], table: dict[int, tuple[int, int, str]]) -> set[int]:
    """``roots`` and every process below them in ``table`` (zombies left out)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [r for r in roots if r in table]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return {p for p in found if table[p][2] != "Z"}


def _node_processes(state: dict, table: dict) -> dict[int, dict]:
    """Every live process of the cluster: recorded ones still alive, and the current
    process trees of the live ``ray start`` roots."""
    procs: dict[int, dict] = {}
    for rec in state.get("pids", []):
        if _alive(rec["pid"], rec["start_time"], table):
            procs[rec["pid"]] = rec
    roots = {n["pid"]: n["name"] for n in state.get("nodes", [])
             if _alive(n["pid"], n["start_time"], table)}
    for root, name in roots.items():
        for pid in _descendants({root}, table):
            procs.setdefault(pid, {"pid": pid, "start_time": table[pid][1], "node": name,
                                   "cmd": _cmdline(pid)})
    return procs


# --------------------------------------------------------------------------- state


def default_dir() -> Path:
    """``$TGO_LOCAL_CLUSTER_DIR`` or ``<tmp>/tgo-ray-<uid>``."""
    env = os.environ.get("TGO_LOCAL_CLUSTER_DIR")
    return Path(env) if env else Path(tempfile.gettempdir()) / f"tgo-ray-{os.getuid()}"


def load_state(directory: Path) -> dict | None:
    """The recorded state of the cluster in ``directory``, or None when there is none."""
    path = directory / STATE_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _save_state(directory: Path, state: dict) -> None:
    tmp = directory / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(directory / STATE_FILE)


def client_env(state: dict) -> dict[str, str]:
    """Environment variables a client (``ray.init``, ``ray job``, ``tgo submit``) needs."""
    env = {"RAY_ADDRESS": state["address"], "RAY_API_SERVER_ADDRESS": state["dashboard_url"]}
    env.update(state["auth_env"])
    return env


# --------------------------------------------------------------------------- HTTP


def _get_json(url: str, token: str | None, timeout: float = 5.0) -> tuple[int, Any]:
    """(HTTP status, parsed JSON or text); status 0 when nothing answered."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return 0, None
    try:
        return status, json.loads(body)
    except json.JSONDecodeError:
        return status, body


def _token(state: dict) -> str | None:
    path = state["auth_env"].get("RAY_AUTH_TOKEN_PATH")
    return Path(path).read_text().strip() if path else None


def alive_nodes(state: dict, timeout: float = 5.0) -> list[dict] | None:
    """ALIVE nodes as the dashboard's state API lists them, or None when it does not answer."""
    code, body = _get_json(f"{state['dashboard_url']}/api/v0/nodes?limit=1000", _token(state),
                           timeout)
    if code != 200 or not isinstance(body, dict):
        return None
    nodes = body.get("data", {}).get("result", {}).get("result", [])
    return [n for n in nodes if n.get("state") == "ALIVE"]


# --------------------------------------------------------------------------- start


def _check_port_free(port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError as err:
            raise ClusterError(f"{what} port {port} on {HOST} is in use ({err.strerror}); "
                               f"another Ray cluster? Pass another --{what}-port") from None


def _ray_executable(explicit: str | None) -> str:
    if explicit:
        return explicit
    beside = Path(sys.executable).with_name("ray")
    found = str(beside) if beside.exists() else shutil.which("ray")
    if not found:
        raise ClusterError("no `ray` executable beside this Python or on PATH; install the "
                           "project (pip install -e .) or pass --ray")
    return found


def _node_command(ray: str, ns: argparse.Namespace, name: str, resource: str,
                  temp_dir: Path, head: bool) -> list[str]:
    cmd = [ray, "start", "--block", "--node-ip-address", HOST,
           "--temp-dir", str(temp_dir),
           "--resources", json.dumps({resource: 1}),
           "--num-cpus", str(ns.head_cpus if head else ns.worker_cpus),
           "--num-gpus", str(0 if head else ns.worker_gpus),
           "--object-store-memory", str(ns.object_store_mb * 1024 * 1024),
           # Random ports, so several nodes fit on one address.
           "--dashboard-agent-listen-port", "0", "--min-worker-port", "0",
           "--max-worker-port", "0",
           "--disable-usage-stats", "--log-style", "record", "--log-color", "false"]
    if head:
        cmd += ["--head", "--port", str(ns.port), "--ray-client-server-port",
                str(ns.client_port), "--include-dashboard", "true",
                "--dashboard-host", HOST, "--dashboard-port", str(ns.dashboard_port)]
    else:
        cmd += ["--address", f"{HOST}:{ns.port}"]
    return cmd


def _tail(path: str, lines: int = 25) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:])


def _wait_started(node: dict, proc: subprocess.Popen, deadline: float) -> None:
    """Wait until ``ray start`` of ``node`` printed READY_LINE; raise when it exits first."""
    log = Path(node["log"])
    while True:
        if READY_LINE in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise ClusterError(f"{node['name']}: `ray start` exited with code {proc.returncode} "
                               f"before the node was up; last lines of {log}:\n"
                               f"{_tail(str(log))}")
        if time.monotonic() > deadline:
            raise ClusterError(f"{node['name']}: not up after the timeout; last lines of "
                               f"{log}:\n{_tail(str(log))}")
        time.sleep(0.3)


def _spawn(ray: str, ns: argparse.Namespace, directory: Path, name: str, resource: str,
           env: dict[str, str], head: bool) -> tuple[dict, subprocess.Popen]:
    temp_dir = directory / name
    temp_dir.mkdir(parents=True, exist_ok=True)
    log = directory / f"{name}.log"
    cmd = _node_command(ray, ns, name, resource, temp_dir, head)
    with open(log, "w") as out:
        # Own session: a Ctrl-C in the caller's terminal does not reach the node.
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    start_time = _proc_table()[proc.pid][1]
    node = {"name": name, "resource": resource, "head": head, "pid": proc.pid,
            "start_time": start_time, "temp_dir": str(temp_dir), "log": str(log),
            "num_cpus": ns.head_cpus if head else ns.worker_cpus,
            "num_gpus": 0 if head else ns.worker_gpus, "command": cmd}
    return node, proc


def _record_pids(state: dict) -> None:
    table = _proc_table()
    procs = _node_processes(state, table)
    state["pids"] = sorted(procs.values(), key=lambda r: r["pid"])


def _check_start(ns: argparse.Namespace, directory: Path) -> None:
    """Refuse bad options, a too-long ``directory``, a running cluster and busy ports."""
    for flag in ("workers", "head_cpus", "worker_cpus", "worker_gpus"):
        if getattr(ns, flag) < 0:
            raise ClusterError(f"--{flag.replace('_', '-')}: expected 0 or more, "
                               f"got {getattr(ns, flag)}")
    if ns.object_store_mb < 80:
        raise ClusterError(f"--object-store-mb: expected at least 80 (Ray's minimum is "
                           f"75 MiB), got {ns.object_store_mb}")
    longest = len(str(directory / f"worker-{max(ns.workers, 1)}")) + _socket_tail()
    if longest > _AF_UNIX_MAX:
        raise ClusterError(f"--dir {directory}: too long for Ray's socket paths "
                           f"({longest} > {_AF_UNIX_MAX} bytes); use a shorter folder, "
                           f"e.g. {default_dir()}")
    old = load_state(directory)
    if old is not None:
        table = _proc_table()
        running = [n["name"] for n in old["nodes"] if _alive(n["pid"], n["start_time"], table)]
        if running:
            raise ClusterError(f"a cluster is already running in {directory} (nodes "
                               f"{', '.join(running)}); stop it first: "
                               f"python {sys.argv[0]} stop --dir {directory}")
    for port, what in ((ns.port, "port"), (ns.dashboard_port, "dashboard"),
                       (ns.client_port, "client")):
        _check_port_free(port, what)


def _node_env(ns: argparse.Namespace, directory: Path, ray: str) -> tuple[dict, dict]:
    """(environment of every node, the auth variables a client needs); writes the token."""
    env = dict(os.environ)
    # An inherited token or address would override the one of this cluster.
    for var in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        env.pop(var, None)
    env.setdefault("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", "0")  # no 30 s drain on stop
    # A job's entrypoint (`tgo sweep run ...`, `python ...`) runs with the nodes' PATH: put
    # this environment's executables (.venv/bin) first, whether or not it is activated.
    bins = dict.fromkeys([str(Path(ray).parent), str(Path(sys.executable).parent)])
    env["PATH"] = os.pathsep.join([*bins, env.get("PATH", "")])
    if ns.auth == "token":
        token_path = directory / TOKEN_FILE
        if not token_path.is_file() or not token_path.read_text().strip():
            token_path.write_text(secrets.token_hex(32))
        token_path.chmod(0o600)
        auth_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path)}
    else:
        auth_env = {"RAY_AUTH_MODE": "disabled"}
    env.update(auth_env)
    return env, auth_env


def _wait_dashboard(state: dict, head_proc: subprocess.Popen, timeout: float) -> None:
    head, deadline, token = state["nodes"][0], time.monotonic() + timeout, _token(state)
    while _get_json(f"{state['dashboard_url']}/api/version", token)[0] != 200:
        if head_proc.poll() is not None or time.monotonic() > deadline:
            raise ClusterError(f"head: the dashboard at {state['dashboard_url']} does not "
                               f"answer; last lines of {head['log']}:\n{_tail(head['log'])}")
        time.sleep(0.5)


def _wait_listed(state: dict, timeout: float) -> None:
    """Wait until the dashboard lists a live node with each node's custom resource."""
    wanted = {n["resource"] for n in state["nodes"]}
    deadline = time.monotonic() + timeout
    while True:
        nodes = alive_nodes(state) or []
        seen = {r for n in nodes for r in n.get("resources_total", {}) if r in wanted}
        if seen == wanted:
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"the dashboard lists {len(nodes)} ALIVE node(s), missing "
                               f"{sorted(wanted - seen)}; see the logs in {state['dir']}")
        time.sleep(0.5)


def start(ns: argparse.Namespace) -> dict:
    """Start the head, then the workers; wait until the dashboard lists every node ALIVE.

    Returns the state written to ``<dir>/cluster.json``. Whatever was started is stopped
    again when a step fails.
    """
    directory = ns.dir.resolve()
    _check_start(ns, directory)
    ray = _ray_executable(ns.ray)
    directory.mkdir(parents=True, exist_ok=True)
    env, auth_env = _node_env(ns, directory, ray)
    state: dict[str, Any] = {
        "dir": str(directory), "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "ray": ray, "address": f"{HOST}:{ns.port}",
        "dashboard_url": f"http://{HOST}:{ns.dashboard_port}",
        "client_address": f"ray://{HOST}:{ns.client_port}",
        "auth": ns.auth, "auth_env": auth_env, "nodes": [], "pids": [], "stopped": False}
    t0 = time.monotonic()
    try:
        print(f"starting head: {ns.head_cpus} CPU, resource node_head, GCS {state['address']}, "
              f"dashboard {state['dashboard_url']}, auth {ns.auth}", flush=True)
        head, proc = _spawn(ray, ns, directory, "head", "node_head", env, head=True)
        state["nodes"].append(head)
        _save_state(directory, state)  # from here on, `stop` finds what was started
        _wait_started(head, proc, time.monotonic() + ns.timeout)
        _wait_dashboard(state, proc, ns.timeout)
        print(f"  head up after {time.monotonic() - t0:.1f} s (pid {head['pid']})", flush=True)

        if ns.workers:
            print(f"starting {ns.workers} worker(s): {ns.worker_cpus} CPU, "
                  f"{ns.worker_gpus} GPU each", flush=True)
        spawned = []
        for i in range(1, ns.workers + 1):  # all at once: they start in parallel
            spawned.append(_spawn(ray, ns, directory, f"worker-{i}", f"node_worker_{i}", env,
                                  head=False))
            state["nodes"].append(spawned[-1][0])
        _save_state(directory, state)
        deadline = time.monotonic() + ns.timeout
        for node, wproc in spawned:
            _wait_started(node, wproc, deadline)
            print(f"  {node['name']} up after {time.monotonic() - t0:.1f} s "
                  f"(pid {node['pid']}, resource {node['resource']})", flush=True)
        _wait_listed(state, ns.timeout)
        _record_pids(state)
        _save_state(directory, state)
    except BaseException as err:
        reason = "interrupted" if isinstance(err, KeyboardInterrupt) else "start failed"
        print(f"{reason}; stopping what was started", file=sys.stderr, flush=True)
        _record_pids(state)
        _save_state(directory, state)
        stop_state(directory, state, timeout=15.0)
        raise
    print(f"cluster up after {time.monotonic() - t0:.1f} s: {len(state['nodes'])} node(s), "
          f"{len(state['pids'])} processes", flush=True)
    return state


# --------------------------------------------------------------------------- stop


def _wait_gone(procs: dict[int, dict], timeout: float) -> dict[int, dict]:
    """Wait up to ``timeout`` s for ``procs`` to exit, adding children they spawn meanwhile;
    returns the survivors."""
    deadline = time.monotonic() + timeout
    while True:
        table = _proc_table()
        for pid in _descendants(set(procs), table) - set(procs):
            procs[pid] = {"pid": pid, "start_time": table[pid][1], "node": "?",
                          "cmd": _cmdline(pid)}
        left = {p: r for p, r in procs.items() if _alive(p, r["start_time"], table)}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _signal_all(procs: dict[int, dict], sig: signal.Signals) -> None:
    table = _proc_table()
    for pid, rec in procs.items():
        if _alive(pid, rec["start_time"], table):  # never signal a reused PID
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def stop_state(directory: Path, state: dict, timeout: float = 30.0) -> list[dict]:
    """Stop every process of ``state``; returns the ones that survived SIGKILL (normally none).

    SIGTERM to each node's ``ray start --block`` (workers first), which shuts its node down;
    after ``timeout`` s, SIGTERM to every process still there, then (after at most 5 s more)
    SIGKILL. A recorded PID whose start time differs is another process and is left alone.
    """
    table = _proc_table()
    procs = _node_processes(state, table)
    known = {r["pid"]: r for r in state.get("pids", [])}
    roots = {n["pid"]: {"pid": n["pid"], "start_time": n["start_time"]}
             for n in sorted(state["nodes"], key=lambda n: n["head"])}
    _signal_all({p: r for p, r in roots.items() if p in procs}, signal.SIGTERM)
    left = _wait_gone(procs, timeout)
    if left:
        print(f"  {len(left)} process(es) still there after {timeout:g} s: SIGTERM",
              flush=True)
        _signal_all(left, signal.SIGTERM)
        left = _wait_gone(left, min(timeout, 5.0))
    if left:
        print(f"  {len(left)} process(es) still there: SIGKILL", flush=True)
        _signal_all(left, signal.SIGKILL)
        left = _wait_gone(left, 5.0)
    known.update(procs)
    state["pids"] = sorted(known.values(), key=lambda r: r["pid"])
    state["stopped"] = True
    state["stopped_at"] = datetime.datetime.now().isoformat(timespec="seconds")
    state["stopped_pids"] = sorted(procs)
    _save_state(directory, state)
    return list(left.values())


def stop(directory: Path, timeout: float) -> int:
    """Stop the cluster recorded in ``directory``; 0 when every process is gone."""
    state = load_state(directory)
    if state is None:
        raise ClusterError(f"no cluster recorded in {directory} (no {STATE_FILE}); "
                           f"nothing to stop")
    t0 = time.monotonic()
    n = len(_node_processes(state, _proc_table()))
    if n == 0 and state.get("stopped"):
        print(f"the cluster in {directory} is already stopped (at {state.get('stopped_at')})")
        return 0
    print(f"stopping the cluster in {directory}: {n} process(es)", flush=True)
    left = stop_state(directory, state, timeout)
    if left:
        print("error: these processes did not stop:", file=sys.stderr)
        for rec in left:
            print(f"  pid {rec['pid']}: {rec.get('cmd', '')}", file=sys.stderr)
        return 1
    print(f"stopped {len(state['stopped_pids'])} process(es) in "
          f"{time.monotonic() - t0:.1f} s", flush=True)
    return 0


# --------------------------------------------------------------------------- status


def status(directory: Path, as_json: bool = False) -> int:
    """Print the cluster's state; 0 when every node is up, 1 when some are, 3 when none."""
    state = load_state(directory)
    if state is None:
        print(f"no local cluster recorded in {directory}; start one with: "
              f"python {sys.argv[0]} start --dir {directory}")
        return 3
    table = _proc_table()
    for node in state["nodes"]:
        node["alive"] = _alive(node["pid"], node["start_time"], table)
    up = sum(n["alive"] for n in state["nodes"])
    listed = alive_nodes(state) if up else None
    state["running"] = bool(state["nodes"]) and up == len(state["nodes"])
    state["dashboard_alive_nodes"] = None if listed is None else len(listed)
    code = 0 if state["running"] else (1 if up else 3)
    if as_json:
        print(json.dumps(state, indent=2))
        return code
    word = {0: "running", 1: "DEGRADED", 3: "stopped"}[code]
    print(f"local Ray cluster in {directory}: {word} ({up}/{len(state['nodes'])} nodes up)")
    print(f"  head address  {state['address']}   (ray.init(address=...), "
          f"tgo sweep run --address)")
    print(f"  dashboard     {state['dashboard_url']}   (Job Submission API: "
          f"tgo submit SPEC --address {state['dashboard_url']})")
    if state["auth"] == "token":
        print(f"  auth          token in {state['auth_env']['RAY_AUTH_TOKEN_PATH']} "
              f"(clients: RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=<that file>, "
              f"or RAY_AUTH_TOKEN=<its content>)")
    else:
        print("  auth          disabled (RAY_AUTH_MODE=disabled)")
    if up:
        seen = "no answer" if listed is None else f"{len(listed)} ALIVE node(s)"
        print(f"  dashboard sees {seen}")
    print(f"  {'node':10} {'pid':>7} {'cpus':>4} {'gpus':>4}  {'resource':15} {'state':6} temp dir")
    for n in state["nodes"]:
        print(f"  {n['name']:10} {n['pid']:>7} {n['num_cpus']:>4} {n['num_gpus']:>4}  "
              f"{n['resource']:15} {'up' if n['alive'] else 'down':6} {n['temp_dir']}")
    if code != 3:
        print(f"  connect: eval \"$(python {sys.argv[0]} env --dir {directory})\"")
    return code


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="local_cluster.py", description="A multi-node Ray cluster (head + N workers) on "
        "127.0.0.1, for trying things and for tests.")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", type=Path, default=default_dir(),
                        help="state folder: cluster.json, auth_token, node temp dirs and "
                        "logs (default: %(default)s)")
    up = sub.add_parser("start", parents=[common], help="start the head and the workers",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    up.add_argument("--workers", type=int, default=2, help="worker nodes")
    up.add_argument("--port", type=int, default=6379, help="head GCS port")
    up.add_argument("--dashboard-port", type=int, default=8265,
                    help="dashboard / Job Submission API port")
    up.add_argument("--client-port", type=int, default=10001, help="Ray Client port (ray://)")
    up.add_argument("--head-cpus", type=int, default=1, help="logical CPUs of the head")
    up.add_argument("--worker-cpus", type=int, default=1, help="logical CPUs of each worker")
    up.add_argument("--worker-gpus", type=int, default=0,
                    help="GPUs of each worker (every worker sees all of this machine's GPUs)")
    up.add_argument("--object-store-mb", type=int, default=256,
                    help="object store of each node, MiB")
    up.add_argument("--auth", choices=["token", "disabled"], default="token",
                    help="Ray token authentication")
    up.add_argument("--timeout", type=float, default=180.0,
                    help="seconds to wait for each step of the start-up")
    up.add_argument("--ray", default=None, help="`ray` executable (default: beside python)")
    st = sub.add_parser("status", parents=[common], help="print the cluster's state")
    st.add_argument("--json", action="store_true", help="the state as JSON")
    sub.add_parser("env", parents=[common], help="print `export` lines for clients")
    down = sub.add_parser("stop", parents=[common], help="stop exactly the started processes")
    down.add_argument("--timeout", type=float, default=30.0,
                      help="seconds of graceful shutdown before SIGTERM/SIGKILL to the rest")
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    if not Path("/proc/self/stat").exists():
        print("error: this script needs Linux (/proc)", file=sys.stderr)
        return 2
    try:
        if ns.command == "start":
            state = start(ns)
            print()
            return status(Path(state["dir"]))
        if ns.command == "stop":
            return stop(ns.dir.resolve(), ns.timeout)
        if ns.command == "status":
            return status(ns.dir.resolve(), ns.json)
        state = load_state(ns.dir.resolve())
        if state is None:
            raise ClusterError(f"no cluster recorded in {ns.dir}")
        for key, value in client_env(state).items():
            print(f"export {key}={shlex.quote(value)}")
        return 0
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
