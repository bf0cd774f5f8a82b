"""Which search finds the best front for the same training budget? (issue 12, point 1)

Usage (Ray listens on every interface: run inside the loopback namespace):
    bash .ci/loopback .venv/bin/python benchmarks/search.py                 # 3 seeds, all methods
    bash .ci/loopback .venv/bin/python benchmarks/search.py --seeds 0 --methods random,gp

Every method searches the default sweep's space (``examples/digits-quick.yaml``: its
training, objectives and final evaluation) with the same budget of training epochs
(``--budget``, default 12 full trials' worth), which ends each run (``stop.max_epochs``);
pruned and stopped trials' epochs count. Methods:

* ``random``: Optuna's RandomSampler, no pruning (what a user tries first);
* ``ray_recipe``: what Ray Tune's docs lead to: ``OptunaSearch`` (TPE) + ``ASHAScheduler`` on
  the weighted sum 0.5 clean + 0.5 robust (validation values each epoch, test values at the
  end), recorded by ``MLflowLoggerCallback``;
* ``nsga2`` (population 8), ``tpe``, ``gp`` (both 4 random trials first): Optuna's samplers
  through this project's sweep, no pruning;
* ``gp_mo_asha``: GPSampler with MO-ASHA (rungs at epochs 2 and 6);
* ``default``: the example spec as it is (what ``make sweep`` runs); not run again when it
  is one of the methods above (the report names that one the default);
* ``warm``: the default seeded (``warm_start``) with its cold run of the same seed, drawing
  with another sampler seed; only its new trials count on its front.

A trial counts on the front once it finished training, with its test-split objectives.
The anytime hypervolume (reference 0, 0) is recorded after every epoch any trial trains.
For ``ray_recipe`` the front "as Tune reports it" (every trial's last reported values, the
early-stopped ones' validation numbers included) is reported beside it.

Writes ``<out>/search.json`` and, with ``--report``, ``docs/search.md`` and
``docs/search.png`` (anytime hypervolume against epochs, mean over seeds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:   # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from ray import tune as raytune  # noqa: E402

from tune.pareto import hypervolume, pareto_front  # noqa: E402
from tune.runner import run_sweep  # noqa: E402
from tune.spec import SweepSpec, read_yaml  # noqa: E402
from tune.tracking import objectives_of  # noqa: E402

NO_PRUNING = {"type": "none"}
MO_ASHA = {"type": "mo_asha", "eta": 3, "grace_epochs": 2}
#: Spec changes per method (``ray_recipe`` runs outside the project's sweep).
METHODS: dict[str, dict[str, Any] | None] = {
    "random": {"sampler": {"type": "random"}, "pruner": NO_PRUNING},
    "ray_recipe": None,
    "nsga2": {"sampler": {"type": "nsga2", "population_size": 8}, "pruner": NO_PRUNING},
    # 4 random trials first: what a 12-trial spec gets (SweepSpec.startup_trials); the
    # runs here ask for more trials than the budget allows, which would raise it to 10
    "tpe": {"sampler": {"type": "tpe", "n_startup_trials": 4}, "pruner": NO_PRUNING},
    "gp": {"sampler": {"type": "gp", "n_startup_trials": 4}, "pruner": NO_PRUNING},
    "gp_mo_asha": {"sampler": {"type": "gp", "n_startup_trials": 4}, "pruner": MO_ASHA},
    "default": {},
    # the default again, seeded with its cold run of the same seed (run that one first)
    "warm": {"warm_from": "default"},
}


class Recorder(raytune.Callback):
    """Every per-epoch result in the order the driver saw it (time, trial, epoch, and the
    test objectives when the trial finished)."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.events: list[dict[str, Any]] = []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        event = {"t": time.time(), "trial": trial.trial_id, "epoch": result.get("epoch"),
                 "done": bool(result.get("done_training")),
                 "reported": {k: result.get(k) for k in self.keys}}
        self.events.append(event)


def anytime(events: list[dict[str, Any]], objectives) -> list[tuple[int, float]]:
    """(cumulative epochs, hypervolume of the finished trials' front) after every epoch."""
    seen, front, curve, epochs = set(), [], [], 0
    for e in events:
        key = (e["trial"], e["epoch"])
        if key in seen:
            continue
        seen.add(key)
        epochs += 1
        if e["done"]:
            point = {o.name: e["reported"][o.name] for o in objectives}
            front = pareto_front(front + [point], objectives)
        curve.append((epochs, hypervolume(front, objectives) if front else 0.0))
    return curve


def spec_for(base: dict[str, Any], method: str, seed: int, budget: int, out: Path
             ) -> SweepSpec:
    change = METHODS[method] or {}
    name = f"search-{method}-s{seed}"
    if "warm_from" in change:
        cold = default_method(base)
        change = {**(METHODS[cold] or {}), "warm_start": {
            "from_sweep": f"search-{cold}-s{seed}",
            "tracking_uri": f"sqlite:///{out / 'mlflow.db'}"}}
        seed += 1000   # not the cold run's draws again
    data = {**base, **change, "name": name,
            "num_samples": 4 * budget // base["epochs"],   # the budget ends the run
            "stop": {"max_epochs": budget}, "storage_path": str(out / "runs"),
            "mlflow": {"tracking_uri": f"sqlite:///{out / 'mlflow.db'}", "experiment": name}}
    data["sampler"] = {**base["sampler"], **change.get("sampler", {}), "seed": seed}
    if data["sampler"]["type"] != "nsga2":
        data["sampler"].pop("population_size", None)
    return SweepSpec.from_dict(data)


def run_project(spec: SweepSpec) -> dict[str, Any]:
    recorder = Recorder(list(spec.objective_names))
    outcome = run_sweep(spec, callbacks=[recorder])
    return {"events": recorder.events, "trials": outcome.n_trials,
            "finished": len(outcome.records), "pruned": outcome.n_pruned,
            "stopped": outcome.n_stopped}


def recipe_trial(params: dict[str, Any], spec: SweepSpec) -> None:
    """A user's Ray Tune function trainable: report a weighted score every epoch."""
    import torch

    from tgo.final_eval import EvalSettings, final_evaluation
    from tgo.train import fit

    torch.set_num_threads(1)
    config = spec.train_config(params)
    settings = EvalSettings(**spec.evaluation.model_dump())

    def report(metrics: dict[str, float], state) -> None:
        out = {"epoch": state.epoch, "clean_acc": metrics["val_clean_acc"],
               "robust_acc": metrics["val_robust_acc"]}
        if state.epoch == config.epochs:
            final = final_evaluation(state.model, config, state.splits, settings,
                                     generator=state.noise_rng)
            out.update(clean_acc=final["clean_acc"], robust_acc=final["robust_acc"],
                       done_training=True)
        out["score"] = 0.5 * out["clean_acc"] + 0.5 * out["robust_acc"]
        raytune.report(out)

    fit(config, report)


def run_recipe(spec: SweepSpec) -> dict[str, Any]:
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from tune.search import SweepStopper

    recorder = Recorder(list(spec.objective_names))
    stopper = SweepStopper(objectives_of(spec), max_epochs=spec.stop.max_epochs)
    tuner = raytune.Tuner(
        raytune.with_resources(raytune.with_parameters(recipe_trial, spec=spec), {"cpu": 1}),
        tune_config=raytune.TuneConfig(
            search_alg=OptunaSearch(space=spec.optuna_space(), metric="score", mode="max",
                                    seed=spec.sampler.seed),
            scheduler=ASHAScheduler(metric="score", mode="max", max_t=spec.epochs,
                                    grace_period=1),
            num_samples=spec.num_samples, max_concurrent_trials=spec.max_concurrent),
        run_config=raytune.RunConfig(
            name=spec.name, storage_path=spec.storage_path, stop=stopper, verbose=0,
            callbacks=[MLflowLoggerCallback(tracking_uri=spec.mlflow.tracking_uri,
                                            experiment_name=spec.name), recorder]))
    results = tuner.fit()
    last = [r.metrics for r in results if r.metrics]
    objectives = objectives_of(spec)
    as_reported = pareto_front([{o.name: m.get(o.name) for o in objectives} for m in last],
                               objectives)
    return {"events": recorder.events, "trials": len(results),
            "finished": sum(bool(m.get("done_training")) for m in last),
            "pruned": sum(not m.get("done_training") for m in last), "stopped": 0,
            "hv_as_reported": hypervolume(as_reported, objectives)}


def default_method(base: dict[str, Any]) -> str:
    """The method the example spec is (same sampler type and pruner), else ``default``."""
    for name, change in METHODS.items():
        if change and "sampler" in change and \
                change["sampler"]["type"] == base["sampler"]["type"] and \
                change["pruner"] == {k: v for k, v in base["pruner"].items()}:
            return name
    return "default"


def run_one(base: dict[str, Any], method: str, seed: int, budget: int, out: Path
            ) -> dict[str, Any]:
    spec = spec_for(base, method, seed, budget, out).resolved()
    left = Path(spec.storage_path) / spec.name
    if left.exists():   # a run interrupted before its row was saved: start it afresh
        aside = left.with_name(f"interrupted-{spec.name}-{int(time.time())}")
        print(f"[search] moving the unfinished {left} aside to {aside}", flush=True)
        left.rename(aside)
    start = time.perf_counter()
    row = run_recipe(spec) if METHODS[method] is None else run_project(spec)
    row["wall_s"] = time.perf_counter() - start
    curve = anytime(row.pop("events"), objectives_of(spec))
    row.update(method=method, seed=seed, curve=curve,
               hypervolume=curve[-1][1] if curve else 0.0,
               epochs=curve[-1][0] if curve else 0)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", type=Path, default=REPO / "examples" / "digits-quick.yaml")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--budget", type=int, default=None,
                        help="training epochs per run (default: 12 trials' worth)")
    parser.add_argument("--out", type=Path, default=Path("search-bench"))
    parser.add_argument("--report", action="store_true",
                        help="write docs/search.md and docs/search.png from the results")
    ns = parser.parse_args(argv)
    base = read_yaml(ns.spec)
    budget = ns.budget or 12 * base["epochs"]
    out = ns.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "search.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    done = {(r["method"], r["seed"]) for r in rows}
    import ray
    ray.init(include_dashboard=False, runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    for seed in (int(s) for s in ns.seeds.split(",")):
        for method in ns.methods.split(","):
            if (method, seed) in done or (method == "default" and default_method(base) != method):
                continue   # done before, or the default is one of the methods above
            row = run_one(base, method, seed, budget, out)
            rows.append(row)
            path.write_text(json.dumps(rows))
            print(f"[search] seed {seed} {method:<10} hypervolume {row['hypervolume']:.4f} "
                  f"epochs {row['epochs']} trials {row['trials']} (finished {row['finished']})"
                  f" {row['wall_s'] / 60:.1f} min", flush=True)
    from search_report import write_report   # beside this script
    text = write_report(rows, budget, REPO / "docs" if ns.report else out,
                        default=default_method(base))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
