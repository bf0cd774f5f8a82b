"""cluster/: the manifests are valid and run real ``tgo`` commands; the local multi-node Ray
cluster (cluster/local_cluster.py) starts, runs a task on the node each custom resource
names, and stops every process it started.

The slow tests start real Ray nodes: run them inside the loopback-only namespace of
``make test`` (``.ci/loopback``), where 127.0.0.1 is the only address.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from ports import free_ports

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
SCRIPT = CLUSTER / "local_cluster.py"
YAMLS = sorted(p for p in CLUSTER.rglob("*") if p.suffix in (".yaml", ".yml"))
# Must never be shipped to a cluster or synced to its nodes.
NEVER_SHIPPED = {".git", ".venv", "data", "runs", "mlruns", "mlartifacts", "mlflow.db", "out",
                 "*.pt"}

linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def _docs(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _one(name: str) -> dict:
    (doc,) = _docs(CLUSTER / name)
    return doc


def _ray_version() -> str:
    from importlib.metadata import version
    return version("ray")


# --------------------------------------------------------------------------- tgo commands

_OPERATORS = {";", "&&", "||", "|", "&", "(", ")"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def tgo_commands(text: str) -> list[list[str]]:
    """The ``tgo`` invocations in a shell snippet, as argv lists without the program.

    Lines are separate commands (after joining backslash continuations); within a line,
    ``;``, ``&&``, ``||``, ``|`` and ``&`` separate commands outside quotes. Leading
    ``VAR=value`` assignments are skipped. ``python -m tune.cli`` counts as ``tgo``, and so
    does the command after ``--`` (``ray job submit ... -- tgo sweep run SPEC``).
    """
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError:  # not shell (unbalanced quotes in prose)
            continue
        command: list[str] = []
        for token in tokens + [";"]:
            if token not in _OPERATORS:
                command.append(token)
                continue
            while command and _ASSIGNMENT.match(command[0]):
                command.pop(0)
            if "--" in command and command.index("--") + 1 < len(command):  # ray job submit -- tgo
                rest = command[command.index("--") + 1:]
                if Path(rest[0]).name == "tgo":
                    command = rest
            if command and Path(command[0]).name == "tgo":
                found.append(command[1:])
            elif len(command) > 2 and Path(command[0]).name.startswith("python") \
                    and command[1:3] in (["-m", "tgo.cli"], ["-m", "tune.cli"]):
                found.append(command[3:])
            command = []
    return found


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _strings(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _strings(value)


def _parse_tgo(argv: list[str]):
    from tgo.cli import build_parser
    from tune.cli import add_subcommands
    try:
        return build_parser(add_subcommands).parse_args(argv)
    except SystemExit:
        return None


def test_tgo_command_finder_and_parser_check():
    text = "cd /x && RAY_X=1 OMP=2 tgo sweep run a.yaml; echo 'tgo is; here'\n" \
           "python -m tgo.cli pareto s  # tgo comment\n  .venv/bin/tgo sweep \\\n resume runs/s"
    assert tgo_commands(text) == [["sweep", "run", "a.yaml"], ["pareto", "s"],
                                  ["sweep", "resume", "runs/s"]]
    assert tgo_commands("echo tgo; python -c 'import tgo'") == []
    assert tgo_commands("ray job submit --x y -- tgo sweep run s.yaml") == [
        ["sweep", "run", "s.yaml"]]
    assert _parse_tgo(["sweep", "run", "examples/digits-quick.yaml"]) is not None
    assert _parse_tgo(["sweep", "launch", "examples/digits-quick.yaml"]) is None
    assert _parse_tgo(["sweep", "run", "x.yaml", "--gpus", "2"]) is None


def test_every_tgo_command_in_the_manifests_is_real():
    from tune.spec import load_spec

    found = [(path, argv) for path in YAMLS for doc in _docs(path) for text in _strings(doc)
             for argv in tgo_commands(text)]
    assert any(path.name == "rayjob.yaml" for path, _ in found), \
        "the RayJob's entrypoint should run a tgo command"
    for path, argv in found:
        ns = _parse_tgo(argv)
        assert ns is not None, f"{path.relative_to(REPO)}: `tgo {shlex.join(argv)}` is not a " \
                               f"command of the tgo console script (tune.cli.main)"
        spec = getattr(ns, "spec", None)
        if spec is not None:
            assert (REPO / spec).is_file(), f"{path.name}: spec {spec} is not in the repository"
            load_spec(REPO / spec)  # and it is a valid spec


def _documented_shell() -> list[tuple[str, str]]:
    """(file, shell text) of the commands shown in comments of cluster/'s YAML files and
    Dockerfile, and in the bash blocks of cluster/README.md."""
    found = []
    for path in [*YAMLS, CLUSTER / "kuberay" / "Dockerfile"]:
        lines = [re.sub(r"^\s*#\s?", "", x) for x in path.read_text().splitlines()
                 if x.lstrip().startswith("#")]
        found.append((path.name, "\n".join(lines)))
    readme = (CLUSTER / "README.md").read_text()
    found += [("README.md", block) for block in re.findall(r"```bash\n(.*?)```", readme, re.S)]
    return found


def test_documented_tgo_commands_are_real():
    found = [(name, argv) for name, text in _documented_shell() for argv in tgo_commands(text)]
    commands = {argv[0] for _, argv in found}
    assert {"submit", "sweep", "jobs"} <= commands, commands
    for name, argv in found:
        ns = _parse_tgo(argv)
        assert ns is not None, f"{name}: `tgo {shlex.join(argv)}` is not a tgo command"
        if getattr(ns, "spec", None):
            assert (REPO / ns.spec).is_file(), f"{name}: no spec {ns.spec}"


# --------------------------------------------------------------------------- manifests


def test_every_yaml_parses_and_the_expected_files_exist():
    names = {p.relative_to(CLUSTER).as_posix() for p in YAMLS}
    assert {"kuberay/raycluster.yaml", "kuberay/rayjob.yaml", "aws-gpu.yaml",
            "runtime_env.yaml"} <= names
    for path in YAMLS:
        docs = _docs(path)
        assert docs and all(isinstance(d, dict) for d in docs), path


def test_readme_explains_every_file():
    readme = (CLUSTER / "README.md").read_text()
    for path in CLUSTER.rglob("*"):
        if path.is_file() and path.name != "README.md" and "__pycache__" not in path.parts:
            assert path.relative_to(CLUSTER).as_posix() in readme, path


def _containers(pod_template: dict) -> list[dict]:
    return pod_template["template"]["spec"]["containers"]


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def _check_ray_cluster_spec(spec: dict, where: str) -> None:
    version = _ray_version()
    assert spec["rayVersion"] == version, f"{where}: rayVersion should be the Ray of clients"
    head = _containers(spec["headGroupSpec"])
    ports = {p["containerPort"] for c in head for p in c.get("ports", [])}
    assert 8265 in ports, f"{where}: the head must expose the dashboard (Job Submission API)"
    gpu_groups = []
    for group in spec["workerGroupSpecs"]:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], where
        for c in _containers(group):
            limits = c.get("resources", {}).get("limits", {})
            if "nvidia.com/gpu" in limits:
                assert int(limits["nvidia.com/gpu"]) >= 1
                requests = c["resources"].get("requests", {})
                assert requests.get("nvidia.com/gpu", limits["nvidia.com/gpu"]) == \
                    limits["nvidia.com/gpu"], f"{where}: GPU requests must equal limits"
                gpu_groups.append(group["groupName"])
    assert gpu_groups, f"{where}: no worker group asks for nvidia.com/gpu"
    for c in head + [c for g in spec["workerGroupSpecs"] for c in _containers(g)]:
        assert version in c["image"].split(":")[-1], f"{where}: {c['image']} is not Ray {version}"
    # Token authentication, by KubeRay's authOptions or by env from a Secret on every container.
    if spec.get("authOptions", {}).get("mode") != "token":
        for c in head + [c for g in spec["workerGroupSpecs"] for c in _containers(g)]:
            env = _env(c)
            assert env.get("RAY_AUTH_MODE", {}).get("value") == "token", f"{where}: {c['name']}"
            assert "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"], f"{where}: {c['name']}"


def test_raycluster_manifest():
    doc = _one("kuberay/raycluster.yaml")
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayCluster")
    _check_ray_cluster_spec(doc["spec"], "raycluster.yaml")
    for group in [doc["spec"]["headGroupSpec"], *doc["spec"]["workerGroupSpecs"]]:
        for c in _containers(group):
            assert _env(c)["MLFLOW_TRACKING_URI"]["value"].startswith("http"), c["name"]


def test_rayjob_manifest():
    from ray.runtime_env import RuntimeEnv

    doc = _one("kuberay/rayjob.yaml")
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", "RayJob")
    spec = doc["spec"]
    assert tgo_commands(spec["entrypoint"]), "the entrypoint must run tgo"
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    RuntimeEnv(**runtime_env)  # Ray accepts it
    assert runtime_env["working_dir"].endswith(".zip"), "ships the project as a zip URI"
    # The sweep's driver sets OMP_NUM_THREADS; a job runtime_env repeating it is refused.
    assert "OMP_NUM_THREADS" not in runtime_env.get("env_vars", {})
    assert spec["shutdownAfterJobFinishes"] is True
    _check_ray_cluster_spec(spec["rayClusterSpec"], "rayjob.yaml")


def test_aws_launcher_config():
    import jsonschema
    import ray.autoscaler

    config = _one("aws-gpu.yaml")
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    gpu_types = [t for t in types.values() if t.get("resources", {}).get("GPU", 0) >= 1]
    assert gpu_types, "no node type with GPUs"
    for t in gpu_types:
        assert re.match(r"^(g4dn|g5|g6e?|p3|p4d|p5)\.", t["node_config"]["InstanceType"])
        assert 0 <= t["min_workers"] <= t["max_workers"] <= config["max_workers"]
    assert types[config["head_node_type"]]["resources"].get("CPU") == 0, "no trials on the head"
    assert _ray_version() in config["docker"]["image"].split(":")[-1]
    # The project is synced to a folder and installed from it on every node.
    synced = [remote for remote, local in config["file_mounts"].items() if local == "."]
    assert synced and any(f"-e {synced[0]}" in c for c in config["setup_commands"])
    assert NEVER_SHIPPED <= set(config["rsync_exclude"])
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert all("RAY_AUTH_MODE=token" in c for c in starts if "ray start" in c)


def test_runtime_env_file_ships_the_sources_and_nothing_else(tmp_path):
    from ray._private.runtime_env.packaging import create_package  # what Ray uploads
    from ray.runtime_env import RuntimeEnv
    import zipfile

    runtime_env = _one("runtime_env.yaml")
    RuntimeEnv(**runtime_env)
    assert runtime_env["working_dir"] == "."
    assert NEVER_SHIPPED <= set(runtime_env["excludes"])

    project = tmp_path / "project"
    keep = ["pyproject.toml", "tgo/data.py", "tgo/__init__.py", "tune/cli.py",
            "examples/digits-quick.yaml", "cluster/runtime_env.yaml"]
    drop = [".git/config", ".venv/bin/python", "data/cifar-10/x.bin", "runs/s/result.json",
            "mlruns/0/meta.yaml", "mlartifacts/1/model.pkl", "mlflow.db", "out/train/log.txt",
            "out/plain/checkpoint.pt", "model.pt", "tgo/__pycache__/data.cpython-311.pyc"]
    for name in keep + drop:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text("x")
    package = tmp_path / "pkg.zip"
    create_package(str(project), package, include_gitignore=False,
                   excludes=runtime_env["excludes"])
    shipped = {n.rstrip("/") for n in zipfile.ZipFile(package).namelist()}
    assert set(keep) <= shipped
    assert not shipped & set(drop), sorted(shipped & set(drop))


# --------------------------------------------------------------------------- the script


def _script(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, **kw)


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent PID, start time, state letter) of a process, None when there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[19]), fields[0]


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _running(pid: int, start_time: int | None = None) -> bool:
    """True while ``pid`` runs (not a zombie) and, if given, started at ``start_time``."""
    now = _stat(pid)
    return now is not None and now[2] != "Z" and start_time in (None, now[1])


def test_script_does_not_import_ray_or_the_packages():
    text = SCRIPT.read_text()
    assert not re.search(r"^\s*(import|from)\s+(ray|tgo|tune)\b", text, re.M)
    imports = re.compile(r"^\s*(import|from)\s+(cluster|local_cluster)\b", re.M)
    for path in [*(REPO / "tgo").rglob("*.py"), *(REPO / "tune").rglob("*.py")]:
        assert not imports.search(path.read_text()), f"{path} imports the cluster script"


@linux_only
def test_script_refuses_bad_input_without_starting_anything(tmp_path):
    proc = _script("stop", "--dir", tmp_path)
    assert proc.returncode == 1 and "no cluster recorded" in proc.stderr
    proc = _script("status", "--dir", tmp_path)
    assert proc.returncode == 3 and "no local cluster" in proc.stdout
    proc = _script("start", "--dir", tmp_path, "--workers", "-1")
    assert proc.returncode == 1 and "--workers" in proc.stderr
    deep = tmp_path / ("x" * 80)
    proc = _script("start", "--dir", deep)
    assert proc.returncode == 1 and "too long" in proc.stderr
    assert not (tmp_path / "cluster.json").exists() and not deep.exists()


@linux_only
def test_a_node_that_fails_to_start_is_reported_and_cleaned_up(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("f")  # short: Ray's socket paths live below it
    port, dashboard, client = free_ports(3)
    proc = _script("start", "--dir", tmp_path, "--ray", "/bin/false", "--port", port,
                   "--dashboard-port", dashboard, "--client-port", client, "--timeout", 20)
    assert proc.returncode == 1
    assert "head: `ray start` exited with code 1" in proc.stderr
    assert "stopping what was started" in proc.stderr
    state = json.loads((tmp_path / "cluster.json").read_text())
    assert state["stopped"] and [n["name"] for n in state["nodes"]] == ["head"]
    assert _script("status", "--dir", tmp_path).returncode == 3


@linux_only
def test_stop_ends_a_process_tree_escalates_and_spares_reused_pids(tmp_path):
    """Without Ray: a fake node whose children ignore SIGTERM, and a recorded PID that now
    belongs to another process (different start time), which must survive."""
    node = subprocess.Popen(["bash", "-c", "trap '' TERM; sleep 300 & sleep 300 & wait"],
                            start_new_session=True)
    decoy = subprocess.Popen(["sleep", "300"])
    try:
        deadline = time.monotonic() + 10
        while True:
            children = [p for p in _pids() if (_stat(p) or (0,))[0] == node.pid]
            if len(children) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(children) == 2
        node_start = _stat(node.pid)[1]
        decoy_start = _stat(decoy.pid)[1]
        state = {"nodes": [{"name": "head", "head": True, "pid": node.pid,
                            "start_time": node_start}],
                 "pids": [{"pid": decoy.pid, "start_time": decoy_start + 1, "node": "head"}]}
        (tmp_path / "cluster.json").write_text(json.dumps(state))
        t0 = time.monotonic()
        proc = _script("stop", "--dir", tmp_path, "--timeout", "1")
        elapsed = time.monotonic() - t0
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "SIGKILL" in proc.stdout  # SIGTERM was ignored
        assert elapsed < 30
        node.wait(timeout=10)
        assert node.returncode == -9
        assert not any(_running(pid) for pid in children)
        assert decoy.poll() is None, "a PID recorded with another start time was signalled"
        after = json.loads((tmp_path / "cluster.json").read_text())
        assert after["stopped"] and set(after["stopped_pids"]) == {node.pid, *children}
    finally:
        for p in (node, decoy):
            if p.poll() is None:
                p.kill()
            p.wait()


# --------------------------------------------------------------------------- a real cluster


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory):
    """One 3-node cluster (head + 2 workers) for the module; stopped at teardown whatever
    happened. Yields (state folder, state at start, start output)."""
    directory = tmp_path_factory.mktemp("rc")
    port, dashboard, client = free_ports(3)
    try:
        proc = _script("start", "--dir", directory, "--workers", 2, "--port", port,
                       "--dashboard-port", dashboard, "--client-port", client,
                       "--timeout", 240, timeout=900)
        assert proc.returncode == 0, f"start failed:\n{proc.stdout}\n{proc.stderr}"
        state = json.loads((directory / "cluster.json").read_text())
        yield directory, state, proc.stdout
    finally:
        if (directory / "cluster.json").exists():
            _script("stop", "--dir", directory, timeout=300)


_PROBE = r"""
import json, os, sys
import ray

ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)

@ray.remote(num_cpus=0)
def where():
    chain, pid = [], os.getpid()
    while pid > 1:
        chain.append(pid)
        text = open(f"/proc/{pid}/stat").read()
        pid = int(text[text.rindex(")") + 2:].split()[1])
    return {"node_id": ray.get_runtime_context().get_node_id(), "ancestors": chain}

out = {"nodes": [{"id": n["NodeID"], "resources": n["Resources"]}
                 for n in ray.nodes() if n["Alive"]],
       "ran": {r: ray.get(where.options(resources={r: 0.01}).remote(), timeout=180)
               for r in sys.argv[1:]}}
ray.shutdown()
print("PROBE " + json.dumps(out))
"""


def _client_env(state: dict) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        env.pop(var, None)
    env.update({"RAY_ADDRESS": state["address"], **state["auth_env"]})
    return env


@linux_only
@pytest.mark.slow
def test_status_env_and_second_start(local_cluster):
    directory, state, started = local_cluster
    assert "cluster up" in started and "worker-2 up" in started
    assert [n["resource"] for n in state["nodes"]] == ["node_head", "node_worker_1",
                                                       "node_worker_2"]
    assert len({n["temp_dir"] for n in state["nodes"]}) == 3, "each node has its own temp dir"
    assert state["auth_env"]["RAY_AUTH_MODE"] == "token"
    token_path = Path(state["auth_env"]["RAY_AUTH_TOKEN_PATH"])
    assert len(token_path.read_text()) == 64 and (token_path.stat().st_mode & 0o077) == 0

    proc = _script("status", "--dir", directory)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for text in (state["address"], state["dashboard_url"], str(token_path), "3 ALIVE"):
        assert text in proc.stdout
    shown = json.loads(_script("status", "--dir", directory, "--json").stdout)
    assert shown["running"] and shown["dashboard_alive_nodes"] == 3
    exports = _script("env", "--dir", directory).stdout
    assert f"export RAY_ADDRESS={state['address']}" in exports
    assert f"export RAY_AUTH_TOKEN_PATH={token_path}" in exports

    again = _script("start", "--dir", directory)
    assert again.returncode == 1 and "already running" in again.stderr
    assert _script("status", "--dir", directory).returncode == 0


@linux_only
@pytest.mark.slow
def test_dashboard_requires_the_token(local_cluster):
    _, state, _ = local_cluster
    url = f"{state['dashboard_url']}/api/v0/nodes"
    token = Path(state["auth_env"]["RAY_AUTH_TOKEN_PATH"]).read_text()

    def get(header: str | None) -> int:
        request = urllib.request.Request(url)
        if header:
            request.add_header("Authorization", header)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code

    assert get(None) == 401
    assert get("Bearer " + "0" * 64) in (401, 403)
    assert get("Bearer " + token) == 200


@linux_only
@pytest.mark.slow
def test_tasks_run_on_the_node_their_resource_names(local_cluster):
    _, state, _ = local_cluster
    resources = [n["resource"] for n in state["nodes"]]
    proc = subprocess.run([sys.executable, "-c", _PROBE, *resources], capture_output=True,
                          text=True, timeout=400, env=_client_env(state))
    line = [x for x in proc.stdout.splitlines() if x.startswith("PROBE ")]
    assert proc.returncode == 0 and line, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(line[0][len("PROBE "):])

    assert len(out["nodes"]) == 3
    node_of = {}
    for node in out["nodes"]:
        mine = [r for r in resources if r in node["resources"]]
        assert len(mine) == 1, node["resources"]  # one custom resource per node
        assert node["resources"]["CPU"] == 1
        node_of[mine[0]] = node["id"]
    assert len(set(node_of.values())) == 3
    for record in state["nodes"]:
        ran = out["ran"][record["resource"]]
        assert ran["node_id"] == node_of[record["resource"]]
        # The task's process descends from that node's `ray start`, as the script recorded.
        assert record["pid"] in ran["ancestors"], (record, ran)


_JOB_DRIVER = """
import ray, probe_mod
ray.init()
tasks = [ray.remote(num_cpus=0)(probe_mod.where).options(resources={r: 0.01}).remote()
         for r in ["node_head", "node_worker_1", "node_worker_2"]]
for path in ray.get(tasks, timeout=180):
    print("SHIPPED", path, flush=True)
"""

_SUBMIT = r"""
import json, re, sys, time
from ray.job_submission import JobSubmissionClient
url, workdir = sys.argv[1:]
client = JobSubmissionClient(url)
job = client.submit_job(entrypoint="python probe_job.py && echo JOBPID $$ && exec sleep 600",
                        runtime_env={"working_dir": workdir})
deadline = time.time() + 240
while not re.search(r"^JOBPID \d+$", logs := client.get_job_logs(job), re.M):
    if client.get_job_status(job).is_terminal() or time.time() > deadline:
        break
    time.sleep(0.5)
print("SUBMIT " + json.dumps({"job": job, "status": str(client.get_job_status(job)),
                              "logs": logs}))
"""

# Processes the tests leave running for the stop test to check: pid -> start time.
_LEFT_RUNNING: dict[int, int] = {}


def _ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1 and (st := _stat(pid)) is not None:
        chain.append(pid)
        pid = st[0]
    return chain


@linux_only
@pytest.mark.slow
def test_a_working_dir_job_reaches_every_node(local_cluster, tmp_path):
    """The first working_dir job (which broke with a shared temp dir) runs; each node
    unpacks the package into its own temp dir. The job is left running for the stop test."""
    _, state, _ = local_cluster
    workdir = tmp_path / "job"
    workdir.mkdir()
    (workdir / "probe_mod.py").write_text("def where():\n    return __file__\n")
    (workdir / "probe_job.py").write_text(_JOB_DRIVER)
    proc = subprocess.run([sys.executable, "-c", _SUBMIT, state["dashboard_url"], str(workdir)],
                          capture_output=True, text=True, timeout=400, env=_client_env(state))
    line = [x for x in proc.stdout.splitlines() if x.startswith("SUBMIT ")]
    assert proc.returncode == 0 and line, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads(line[0][len("SUBMIT "):])
    logs = out["logs"]
    assert "RUNNING" in out["status"], logs[-3000:]
    shipped = [x.split(" ", 1)[1] for x in logs.splitlines() if x.startswith("SHIPPED ")]
    assert len(shipped) == 3, logs[-3000:]
    for node, path in zip(state["nodes"], shipped):
        assert path.startswith(node["temp_dir"] + "/"), (node["name"], path)
        assert path.endswith("/probe_mod.py")
    job_pid = int(re.search(r"^JOBPID (\d+)$", logs, re.M).group(1))
    # The driver runs in its own session, but below the head's `ray start`.
    assert state["nodes"][0]["pid"] in _ancestors(job_pid)
    assert os.getsid(job_pid) != os.getsid(state["nodes"][0]["pid"])
    _LEFT_RUNNING[job_pid] = _stat(job_pid)[1]


@linux_only
@pytest.mark.slow
def test_stop_ends_every_recorded_process(local_cluster):
    """Runs last in this module: stops the cluster the other tests used."""
    directory, _, _ = local_cluster
    before = json.loads((directory / "cluster.json").read_text())
    recorded = {r["pid"]: r["start_time"] for r in before["pids"]}
    recorded.update({n["pid"]: n["start_time"] for n in before["nodes"]})
    assert len(recorded) >= 9  # 3 x (ray start, raylet, agents, ...) at least
    assert all(_running(pid, start) for pid, start in recorded.items())
    recorded.update(_LEFT_RUNNING)  # e.g. a running job's driver, started after `start`

    proc = _script("stop", "--dir", directory, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = json.loads((directory / "cluster.json").read_text())
    assert after["stopped"]
    for rec in after["pids"]:
        recorded.setdefault(rec["pid"], rec["start_time"])
    alive = {pid for pid, start in recorded.items() if _running(pid, start)}
    assert not alive, alive
    # Nothing anywhere still runs out of the cluster's folder.
    leftovers = []
    for pid in _pids():
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(directory) in cmd and _running(pid):
            leftovers.append(f"{pid}: {cmd[:150]}")
    assert not leftovers, leftovers
    assert _script("status", "--dir", directory).returncode == 3
    again = _script("stop", "--dir", directory)
    assert again.returncode == 0 and "already stopped" in again.stdout
    assert json.loads((directory / "cluster.json").read_text()) == after
