"""Kill-and-resume drill: the driver SIGKILLed at a random moment, then resumed; repeated.

Usage:
    bash .ci/loopback .venv/bin/python benchmarks/kill_resume.py [--runs 20] [--seed 0]

What a user does after a crash, end to end, each run in a fresh folder: ``tgo sweep run``
of a small digits sweep (6 trials of 4 epochs, 2 at a time, NSGA-II + MO-ASHA, local Ray,
SQLite MLflow store), its whole process group (driver and local Ray) killed with SIGKILL
at a moment drawn uniformly from ``--kill-after`` seconds, then ``tgo sweep resume`` to
the end. Afterwards, from the MLflow store:

* no (run, metric, step) holds two points: no epoch logged twice, running trials included;
* the sweep's parent run is FINISHED and one finished/pruned child run exists per trial
  (a child closed as ``lost`` is a trial the killed driver had started after Ray's last
  state snapshot: it is never rerun; one tagged ``tgo.orphan`` had even ended by then: its
  record stands but the resumed sweep does not know it; both are counted apart);
* ``tgo sweep resume`` exited 0 and printed no traceback (but those Ray 2.60 prints and
  survives, counted apart: :data:`KNOWN_RAY_TRACEBACKS`).

A kill before Ray's first state snapshot makes ``resume`` start the sweep again (same
MLflow parent run); a kill before the sweep saved its spec leaves nothing to resume, and
``resume`` must say so (exit 2, no traceback). Prints one line per run and a summary;
exits 1 when any check failed.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TGO = [sys.executable, "-m", "tune.cli"]


def write_spec(folder: Path, name: str = "drill") -> Path:
    data = {
        "name": name, "dataset": "digits", "epochs": 4,
        "train": {"batch_size": 128, "val_subset": 64, "val_steps": 2, "val_eot_samples": 1},
        "space": {"margin_weight": {"type": "uniform", "low": 0.0, "high": 0.6},
                  "noise_scale": {"type": "uniform", "low": 0.05, "high": 0.3},
                  "timesteps": {"type": "choice", "values": [2]}},
        "objectives": {"clean_acc": "max", "robust_acc": "max"},
        "sampler": {"type": "nsga2", "seed": 0, "population_size": 2},
        "pruner": {"type": "mo_asha", "eta": 2, "grace_epochs": 1},
        "num_samples": 6, "max_concurrent": 2,
        "evaluation": {"eps": 0.1, "steps": 3, "eot_samples": 2, "max_examples": 120},
        "mlflow": {"tracking_uri": f"sqlite:///{folder}/mlflow.db", "experiment": name},
        "storage_path": str(folder / "runs"),
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def check_store(tracking_uri: str, experiment: str, num_samples: int) -> list[str]:
    """Problems found in the sweep's MLflow records (empty when all is well)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return ["no MLflow experiment"]
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("tgo.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("tgo.kind") == "trial"]
    problems = []
    if len(parents) != 1 or parents[0].info.status != "FINISHED":
        problems.append(f"expected one FINISHED parent run, got "
                        f"{[p.info.status for p in parents]}")
    for child in children:
        for key in child.data.metrics:
            steps = Counter(m.step for m in client.get_metric_history(child.info.run_id, key))
            twice = sorted(s for s, n in steps.items() if n > 1)
            if twice:
                problems.append(f"{child.data.tags.get('tgo.trial_id')}: {key} logged twice "
                                f"at step(s) {twice}")
    # Outside the resumed sweep, counted apart: "lost" (running at the kill, closed) and
    # orphans (ended after Ray's last snapshot; their record stands, tagged tgo.orphan).
    kept = [c for c in children if "lost:" not in c.data.tags.get("status", "")
            and "tgo.orphan" not in c.data.tags]
    ids = Counter(c.data.tags.get("tgo.trial_id") for c in kept)
    if len(ids) != num_samples or max(ids.values(), default=0) > 1:
        problems.append(f"expected {num_samples} trial runs, one per trial, got {dict(ids)}")
    open_runs = [c.data.tags.get("tgo.trial_id") for c in children
                 if c.info.status == "RUNNING"]
    if open_runs:
        problems.append(f"child runs left RUNNING: {open_runs}")
    return problems


#: Tracebacks Ray 2.60 itself prints on a resume and survives: (what precedes, what follows).
KNOWN_RAY_TRACEBACKS = {
    # A resumed trial registers a new checkpoint and Ray deletes the oldest one its (stale)
    # snapshot lists, which the killed driver had already deleted: "Error handling
    # checkpoint ... Path not found", logged; the trial and the sweep go on.
    "checkpoint-GC error": ("Error handling checkpoint", ("_delete_fs_path", "Path not found")),
    # An idle trial actor stopped with SIGTERM at the sweep's end: "Exception ignored in ...
    # sigterm_handler ... SystemExit", printed by the worker as it exits.
    "worker-exit noise": ("Exception ignored in", ("sigterm_handler", "SystemExit")),
}


def _tracebacks(text: str) -> tuple[list[int], int]:
    """(offsets of unexpected tracebacks, count of Ray's known ones, KNOWN_RAY_TRACEBACKS).

    The checks of the MLflow store still apply to a run that printed a known one.
    """
    unknown, known, at = [], 0, text.find("Traceback")
    while at >= 0:
        before, after = text[max(0, at - 3000):at], text[at:at + 3000]
        if any(cause in before[-400 if cause == "Exception ignored in" else -3000:]
               and all(k in after for k in marks)
               for cause, marks in KNOWN_RAY_TRACEBACKS.values()):
            known += 1
        else:
            unknown.append(at)
        at = text.find("Traceback", at + 1)
    return unknown, known


def one_run(kill_after_s: float, folder: Path, timeout_s: float = 900) -> dict:
    """One drill in ``folder``; returns what happened and the problems found."""
    spec = write_spec(folder)
    log = open(folder / "driver.log", "w")
    started = time.monotonic()
    proc = subprocess.Popen([*TGO, "sweep", "run", str(spec)], stdout=log,
                            stderr=subprocess.STDOUT, env=_env(), cwd=folder,
                            start_new_session=True)
    try:
        proc.wait(timeout=kill_after_s)
        killed = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        killed = True
    log.close()
    out: dict = {"kill_after_s": round(kill_after_s, 1), "killed": killed, "problems": []}
    if not killed:
        out["problems"] += [] if proc.returncode == 0 else [f"run exited {proc.returncode}"]
    experiment = folder / "runs" / "drill"
    resumed = subprocess.run([*TGO, "sweep", "resume", str(experiment)], capture_output=True,
                             text=True, env=_env(), cwd=folder, timeout=timeout_s)
    text = resumed.stdout + resumed.stderr
    (folder / "resume.log").write_text(text)
    out["resume_rc"] = resumed.returncode
    out["wall_s"] = round(time.monotonic() - started, 1)
    unknown, out["known_ray_tracebacks"] = _tracebacks(text)
    for at in unknown:
        out["problems"].append("resume printed a traceback (resume.log):\n"
                               + text[max(0, at - 300):at + 2500])
    if resumed.returncode == 2 and "no sweep at" in text:
        out["outcome"] = "nothing to resume (killed before the sweep saved its spec)"
        return out
    if resumed.returncode != 0:
        out["problems"].append(f"resume exited {resumed.returncode}:\n{text[-3000:]}")
        return out
    if not killed:
        out["outcome"] = "finished before the kill; resume was a no-op"
    elif "starting the sweep again" in text:
        out["outcome"] = "restarted (killed before Ray's first state snapshot)"
    else:
        out["outcome"] = "resumed"
    out["problems"] += check_store(f"sqlite:///{folder}/mlflow.db", "drill", 6)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kill-after", type=float, nargs=2, default=(8.0, 45.0),
                        metavar=("LOW", "HIGH"), help="seconds (uniform)")
    parser.add_argument("--keep", action="store_true", help="keep each run's folder")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    failed = known_logs = 0
    outcomes = Counter()
    for i in range(args.runs):
        folder = Path(tempfile.mkdtemp(prefix=f"kill-resume-{i}-"))
        result = one_run(rng.uniform(*args.kill_after), folder)
        outcomes[result.get("outcome", "failed")] += 1
        verdict = "ok" if not result["problems"] else "FAILED"
        failed += bool(result["problems"])
        known = result.get("known_ray_tracebacks", 0)
        known_logs += known
        print(f"run {i + 1}/{args.runs}: kill after {result['kill_after_s']} s, "
              f"{result.get('outcome', '-')}, {result['wall_s']} s: {verdict}"
              + (f" (Ray printed {known} known traceback(s))" if known else ""),
              flush=True)
        for problem in result["problems"]:
            print(f"    {problem}", flush=True)
        if not args.keep and not result["problems"]:
            subprocess.run(["rm", "-rf", str(folder)], check=False)
        elif result["problems"]:
            print(f"    kept {folder}", flush=True)
    print(f"{args.runs - failed}/{args.runs} runs passed; " +
          ", ".join(f"{n} {what}" for what, n in outcomes.items()) +
          f"; Ray printed {known_logs} known traceback(s) (KNOWN_RAY_TRACEBACKS)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
