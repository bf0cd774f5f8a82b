"""Resume across an Optuna upgrade, for real: a sweep driven under Optuna 5.0.0 is SIGKILLed
mid-way and `tgo sweep resume` finishes it under the locked Optuna (5.1), whose NSGA-II
sampler holds a lock and whose pickles differ. Then the drill of benchmarks/kill_resume.py,
twice, at random moments: no epoch logged twice.

Optuna 5.0.0 is put in front of the venv's with `pip install --no-deps --target` (Optuna is
pure Python); the driver, the local Ray and its workers all see it through PYTHONPATH.
Slow: about 3 minutes on 2 cores. Runs inside the loopback namespace of `make test`.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scripts import script_module
from mlflow import MlflowClient

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy")]

ROOT = Path(__file__).resolve().parents[1]
OLD_OPTUNA = "5.0.0"
TGO = [sys.executable, "-m", "tune.cli"]


@pytest.fixture(scope="module")
def drill():
    with script_module("benchmarks/kill_resume.py", "benchmarks_kill_resume") as module:
        yield module


@pytest.fixture(scope="module")
def old_optuna(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp(f"optuna-{OLD_OPTUNA}")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--target", str(target), f"optuna=={OLD_OPTUNA}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"could not install optuna {OLD_OPTUNA}:\n{done.stderr}"
    return target


def _ended_children(uri: str, experiment: str) -> int:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return 0
    runs = client.search_runs([exp.experiment_id], "tags.`tgo.kind` = 'trial'")
    return sum(r.data.tags.get("status", "running") != "running" for r in runs)


def test_a_sweep_saved_under_optuna_5_0_resumes_under_the_locked_optuna(
        tmp_path, drill, old_optuna):
    import optuna
    assert optuna.__version__ != OLD_OPTUNA
    spec = drill.write_spec(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = dict(drill._env(), PYTHONPATH=f"{old_optuna}{os.pathsep}{ROOT}")
    log = tmp_path / "driver.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([*TGO, "sweep", "run", str(spec)], stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
                                start_new_session=True)
    deadline = time.monotonic() + 600
    while _ended_children(uri, "drill") < 2:
        assert proc.poll() is None, f"driver ended early:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    experiment = tmp_path / "runs" / "drill"
    saved = json.loads((experiment / "sweep_versions.json").read_text())
    assert saved["optuna"] == OLD_OPTUNA

    resumed = subprocess.run([*TGO, "sweep", "resume", str(experiment)], capture_output=True,
                             text=True, env=drill._env(), cwd=tmp_path, timeout=900)
    text = resumed.stdout + resumed.stderr
    unknown_tracebacks, _ = drill._tracebacks(text)   # Ray's known checkpoint-GC log aside
    assert resumed.returncode == 0 and not unknown_tracebacks, text[-4000:]
    assert f"resuming under optuna {optuna.__version__} (saved under {OLD_OPTUNA})" in text
    line = next(l for l in text.splitlines() if "restored the search" in l)
    assert int(line.split("NSGAIISampler study of ")[1].split()[0]) >= 2, line
    assert drill.check_store(uri, "drill", 6) == []
    client = MlflowClient(uri)
    (parent,) = client.search_runs([client.get_experiment_by_name("drill").experiment_id],
                                   "tags.`tgo.kind` = 'sweep'")
    assert parent.data.tags["tgo.version.optuna"] == OLD_OPTUNA
    assert f"optuna {optuna.__version__} (was {OLD_OPTUNA})" in \
        parent.data.tags["tgo.resumed_under"]


@pytest.mark.parametrize("seed", [11, 12])
def test_kill_at_a_random_moment_then_resume_logs_nothing_twice(tmp_path, drill, seed):
    result = drill.one_run(random.Random(seed).uniform(15.0, 60.0), tmp_path)
    assert result["problems"] == [], result
