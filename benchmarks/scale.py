"""Scale: what the driver's multi-objective bookkeeping and MLflow reads cost at 1k-10k trials.

Usage:
    .venv/bin/python benchmarks/scale.py                       # all parts, 1k, 3k, 10k
    .venv/bin/python benchmarks/scale.py --parts pruner,front --sizes 1000,3000
    .venv/bin/python benchmarks/scale.py --report              # also docs/scale.json
                                                               # (replacing the parts run)

No Ray and no server: each part calls the code the sweep driver runs, on made-up trials
(two objectives, values on a 0.001 grid so ties happen, like accuracies on a test split).

* ``pruner``: MO-ASHA through the scheduler's own path (``OptunaPruningScheduler.decide``
  and ``finish``: the mirror study, the rung records, the decisions), ``n`` trials of 9
  epochs, 4 running at once, grace 1, eta 3 (rungs at 1 and 3). Reports the time per rung
  decision over the last tenth of the trials and the whole bookkeeping of the sweep. The
  baseline is the pruner before issue 14 (every trial re-read and sorted in pure Python per
  decision, ``tests/pareto_reference.py``) at ``--baseline-n`` trials, in the same run.
* ``front``: a front rebuild's computation (``pareto_ranks`` + ``hypervolume`` on ``n``
  finished records) against the pure-Python sort; ``hypervolume`` alone.
* ``files``: the front's four artifacts (``pareto.csv/json/png/html``) for ``n`` records.
* ``samplers``: one suggestion (``ask`` + ``tell``) of each spec sampler on a study of ``n``
  finished trials of the default space; GPSampler at ``--gp-sizes`` (its model is cubic).
* ``mlflow``: a sweep's child runs through :class:`tune.tracking.SweepTracker` in a SQLite
  store (open, log an epoch, finish): time per trial as the store grows; at each size the
  front rebuild against the store (read the finished runs, then rewrite tags and artifacts:
  the first rebuild, tagging every run, and a second one after one more trial), and what
  ``tgo pareto`` and ``tgo pick`` read.

Growth exponents are the slopes of log(time) against log(n) between consecutive sizes.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))   # the plain definitions, for the baselines

import optuna  # noqa: E402

from tune.pareto import Objective, hypervolume, pareto_ranks  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
OBJECTIVES = (Objective("clean_acc", "max"), Objective("robust_acc", "max"))
EPOCHS, CONCURRENT = 9, 4


def _values(rng: random.Random) -> list[float]:
    clean = rng.random()
    return [round(clean, 3), round(max(0.0, 1.0 - clean - 0.3 * rng.random()), 3)]


def growth(sizes: list[int], times: list[float]) -> list[float]:
    """Slopes of log(time) against log(n) between consecutive sizes."""
    return [math.log(t2 / t1) / math.log(n2 / n1) if t1 > 0 and t2 > 0 else math.nan
            for n1, n2, t1, t2 in zip(sizes, sizes[1:], times, times[1:])]


# ----------------------------------------------------------------------------- pruner


def run_pruner(n: int, pruner: Any, seed: int = 0) -> dict[str, float]:
    """A sweep's MO-ASHA bookkeeping for ``n`` trials; seconds in all and per decision."""
    from tune.search.scheduler import OptunaPruningScheduler

    rng = random.Random(seed)
    sched = OptunaPruningScheduler(pruner, metric=["val_clean_acc", "val_robust_acc"],
                                   mode=["max", "max"])
    total, late, late_n, decisions = 0.0, 0.0, 0, 0
    started, running = 0, []
    while started < n or running:
        while len(running) < CONCURRENT and started < n:
            running.append([f"t{started:06d}", 0, _values(rng)])
            started += 1
        entry = running[rng.randrange(len(running))]
        trial_id, epoch, base = entry
        epoch = entry[1] = epoch + 1
        noise = 0.02 * rng.random()
        result = {"epoch": epoch, "val_clean_acc": round(base[0] * epoch / EPOCHS + noise, 3),
                  "val_robust_acc": round(base[1] * epoch / EPOCHS, 3),
                  "done_training": epoch == EPOCHS}
        rung = epoch in (1, 3)
        t0 = time.perf_counter()
        verdict = sched.decide(trial_id, result)
        if verdict == sched.STOP or epoch == EPOCHS:
            sched.finish(trial_id)
        spent = time.perf_counter() - t0
        total += spent
        if rung:
            decisions += 1
            if started > 0.9 * n:
                late, late_n = late + spent, late_n + 1
        if verdict == sched.STOP or epoch == EPOCHS:
            running.remove(entry)
    return {"n": n, "total_s": total, "decisions": decisions,
            "ms_per_decision": 1000 * late / max(1, late_n), "pruned": len(sched.pruned)}


def part_pruner(sizes: list[int], baseline_n: int) -> dict[str, Any]:
    from pareto_reference import FullRereadMOASHA
    from tune.search.mo_asha import MOASHAPruner

    kw = dict(grace_period=1, reduction_factor=3, max_resource=EPOCHS)
    rows = []
    for n in sizes:
        rows.append(run_pruner(n, MOASHAPruner(**kw)))
        _say(f"pruner   n={n:>6}: {rows[-1]['ms_per_decision']:7.2f} ms per decision, "
             f"{rows[-1]['total_s']:7.1f} s in all ({rows[-1]['decisions']} decisions, "
             f"{rows[-1]['pruned']} pruned)")
    base = run_pruner(baseline_n, FullRereadMOASHA(**kw))
    same = run_pruner(baseline_n, MOASHAPruner(**kw))
    assert base["pruned"] == same["pruned"], "the baseline decided differently"
    _say(f"pruner baseline n={baseline_n}: before {base['ms_per_decision']:.2f} ms per decision"
         f" ({base['total_s']:.1f} s), now {same['ms_per_decision']:.2f} ms "
         f"({same['total_s']:.1f} s): {base['total_s'] / same['total_s']:.0f}x less in all")
    return {"rows": rows, "baseline": {"before": base, "now": same},
            "growth_per_decision": growth(sizes, [r["ms_per_decision"] for r in rows]),
            "growth_total": growth(sizes, [r["total_s"] for r in rows])}


# ----------------------------------------------------------------------------- front


def _records(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{"trial_id": f"t{i:06d}", "run_id": f"r{i:06d}", "params": {"eps_train": 0.1},
             **dict(zip(("clean_acc", "robust_acc"), _values(rng)))} for i in range(n)]


def _best_of(fn: Callable[[], Any], repeat: int = 3) -> float:
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def part_front(sizes: list[int], baseline_sizes: list[int]) -> dict[str, Any]:
    import pareto_reference as ref

    rows = []
    for n in sizes:
        recs = _records(n)
        rebuild = _best_of(lambda: (pareto_ranks(recs, OBJECTIVES), hypervolume(recs, OBJECTIVES)))
        hv = _best_of(lambda: hypervolume(recs, OBJECTIVES))
        rows.append({"n": n, "rebuild_s": rebuild, "hypervolume_s": hv})
        _say(f"front    n={n:>6}: rebuild (ranks + hypervolume) {1000 * rebuild:8.1f} ms, "
             f"hypervolume {1000 * hv:6.1f} ms")
    base = []
    for n in baseline_sizes:
        recs = _records(n)
        before = _best_of(lambda: ref.non_dominated_sort(recs, OBJECTIVES), repeat=1)
        now = _best_of(lambda: pareto_ranks(recs, OBJECTIVES))
        base.append({"n": n, "before_s": before, "now_s": now})
        _say(f"front baseline n={n}: pure-Python sort {1000 * before:.0f} ms, now "
             f"{1000 * now:.1f} ms ({before / now:.0f}x)")
    return {"rows": rows, "baseline": base,
            "growth_rebuild": growth(sizes, [r["rebuild_s"] for r in rows])}


def part_files(sizes: list[int]) -> dict[str, Any]:
    from tune.tracking.front_models import write_front_files

    rows = []
    for n in sizes:
        recs = _records(n)
        ranks = pareto_ranks(recs, OBJECTIVES)
        with tempfile.TemporaryDirectory() as folder:
            t0 = time.perf_counter()
            write_front_files(Path(folder), recs, ranks, OBJECTIVES,
                              hypervolume(recs, OBJECTIVES), {"sweep_name": "scale"})
            spent = time.perf_counter() - t0
            size = sum(p.stat().st_size for p in Path(folder).iterdir())
        rows.append({"n": n, "write_s": spent, "bytes": size})
        _say(f"files    n={n:>6}: pareto.csv/json/png/html {spent:6.2f} s, {size / 1e6:.1f} MB")
    return {"rows": rows, "growth": growth(sizes, [r["write_s"] for r in rows])}


# ----------------------------------------------------------------------------- samplers


def time_sampler(kind: str, n: int, asks: int, seed: int = 3) -> float:
    """Seconds per ask + tell of the spec's ``kind`` sampler on a study of ``n`` finished
    trials of the default space (examples/digits-quick.yaml)."""
    from optuna.trial import create_trial

    from tune.search import make_sampler
    from tune.spec import load_spec

    base = load_spec(ROOT / "examples" / "digits-quick.yaml")
    data = base.model_dump(mode="json")
    data["sampler"] = {"type": kind, "seed": 0, **({"population_size": 50}
                                                   if kind == "nsga2" else {})}
    spec = type(base).from_dict(data)
    space = spec.optuna_space()
    study = optuna.create_study(directions=["maximize", "maximize"],
                                sampler=make_sampler(spec))
    rng = random.Random(seed)
    filler = optuna.samplers.RandomSampler(seed=seed)
    trials = []
    for _ in range(n):
        params = {name: filler.sample_independent(study, None, name, dist)
                  for name, dist in space.items()}
        trials.append(create_trial(params=params, distributions=space, values=_values(rng)))
    study.add_trials(trials)
    t0 = time.perf_counter()
    for _ in range(asks):
        trial = study.ask(space)
        study.tell(trial, _values(rng))
    return (time.perf_counter() - t0) / asks


def part_samplers(sizes: list[int], gp_sizes: list[int]) -> dict[str, Any]:
    rows = []
    for kind, ns in (("random", sizes), ("nsga2", sizes), ("tpe", sizes), ("gp", gp_sizes)):
        times = []
        for n in ns:
            per = time_sampler(kind, n, asks=3 if kind == "gp" else 10)
            times.append(per)
            rows.append({"sampler": kind, "n": n, "ms_per_suggestion": 1000 * per})
            _say(f"sampler  {kind:<6} n={n:>6}: {1000 * per:9.1f} ms per suggestion")
        rows[-1]["growth"] = growth(ns, times)
    return {"rows": rows}


# ----------------------------------------------------------------------------- mlflow


def part_mlflow(sizes: list[int]) -> dict[str, Any]:
    from tune.tracking import SweepTracker
    from tune.tracking.reader import load_front, load_front_members

    rng = random.Random(2)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tgo-scale-") as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        tracker = SweepTracker(uri, "scale", "scale", "0" * 12, {"name": "scale"},
                               objectives=OBJECTIVES, artifact_location=f"{tmp}/artifacts")
        tracker.start()
        done = 0

        def add_trial(i: int) -> None:
            run = tracker.child_run(f"t{i:06d}", {"eps_train": round(rng.random() * 0.3, 3)})
            values = dict(zip(("clean_acc", "robust_acc"), _values(rng)))
            tracker.log_epoch(run, {"val_" + k: v for k, v in values.items()}, 1)
            tracker.finish_trial(run, {"epoch": 1, **values}, "finished")

        for n in sizes:
            window = min(200, n - done)
            while done < n - window:
                add_trial(done)
                done += 1
                if done % 1000 == 0:
                    _say(f"mlflow   ... {done} child runs")
            t0 = time.perf_counter()
            while done < n:
                add_trial(done)
                done += 1
            per_trial = (time.perf_counter() - t0) / window
            t0 = time.perf_counter()
            records = tracker.finished_records()
            read_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            tracker.update_front(records)
            first_s = time.perf_counter() - t0
            add_trial(done)
            done += 1
            t0 = time.perf_counter()
            tracker.update_front(tracker.finished_records())
            again_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            front, _, _ = load_front("scale", tracking_uri=uri)
            pareto_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            from tune import deploy as picking
            picking.pick(load_front_members("scale", tracking_uri=uri), [], "robust_acc", "max")
            pick_s = time.perf_counter() - t0
            rows.append({"n": n, "ms_per_trial": 1000 * per_trial, "read_s": read_s,
                         "first_rebuild_s": first_s, "rebuild_s": again_s,
                         "tgo_pareto_s": pareto_s, "tgo_pick_s": pick_s,
                         "front": len(front)})
            _say(f"mlflow   n={n:>6}: {1000 * per_trial:5.0f} ms per trial; read finished "
                 f"{read_s:5.1f} s; front rebuild {first_s:5.1f} s first, {again_s:5.1f} s "
                 f"again; tgo pareto {pareto_s:4.2f} s, tgo pick {pick_s:4.2f} s "
                 f"({len(front)} on the front)")
        tracker.finish()
    return {"rows": rows,
            "growth_per_trial": growth(sizes, [r["ms_per_trial"] for r in rows]),
            "growth_rebuild": growth(sizes, [r["rebuild_s"] for r in rows])}


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,3000,10000")
    parser.add_argument("--mlflow-sizes", default=None, help="default: --sizes")
    parser.add_argument("--parts", default="pruner,front,files,samplers,mlflow")
    parser.add_argument("--gp-sizes", default="100,300,1000",
                        help="study sizes for GPSampler (cubic in the trials)")
    parser.add_argument("--baseline-n", type=int, default=1000,
                        help="trials for the pre-issue-14 pruner (it is cubic: 1000 ~ 1 min)")
    parser.add_argument("--report", action="store_true", help="write docs/scale.json")
    ns = parser.parse_args(argv)
    sizes = [int(s) for s in ns.sizes.split(",")]
    parts = ns.parts.split(",")
    out: dict[str, Any] = {"sizes": sizes}
    if "pruner" in parts:
        out["pruner"] = part_pruner(sizes, ns.baseline_n)
    if "front" in parts:
        out["front"] = part_front(sizes, [n for n in (1000, 2000, 4000) if n <= max(sizes)])
    if "files" in parts:
        out["files"] = part_files(sizes)
    if "samplers" in parts:
        out["samplers"] = part_samplers(sizes, [int(s) for s in ns.gp_sizes.split(",")])
    if "mlflow" in parts:
        out["mlflow"] = part_mlflow([int(s) for s in (ns.mlflow_sizes or ns.sizes).split(",")])
    print()
    for part, data in out.items():
        for name, slopes in data.items() if isinstance(data, dict) else ():
            if name.startswith("growth"):
                print(f"{part:<7} {name:<22} " + ", ".join(f"{s:.2f}" for s in slopes))
    if ns.report:   # the parts run now replace theirs; the other parts are kept
        path = ROOT / "docs" / "scale.json"
        kept = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**kept, **out}, indent=1) + "\n")
        print(f"wrote {ROOT / 'docs' / 'scale.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
