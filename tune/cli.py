"""``tgo sweep run|resume`` and ``tgo pareto``: the sweep layer of the ``tgo`` command.

Usage:
    tgo sweep run examples/digits-quick.yaml          # local Ray, sqlite MLflow store in cwd
    tgo sweep run SPEC --address ray://head:10001      # an existing Ray cluster
    tgo sweep resume runs/digits-quick                 # continue after a crash
    tgo pareto digits-quick                            # the front, as a table
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

__all__ = ["add_subcommands", "format_front", "mlflow_ui_command"]


def mlflow_ui_command(tracking_uri: str) -> str:
    """The command that opens the MLflow UI on ``tracking_uri``."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri}"
    return f"mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def format_front(front: Sequence[dict[str, Any]], objectives: Sequence[str],
                 params: Sequence[str]) -> str:
    """The front as a fixed-width table, sorted by the first objective (best first)."""
    rows = sorted(front, key=lambda r: -(r.get(objectives[0]) or float("-inf")))
    attack = any(r.get("eval") for r in rows)
    header = ["trial", *objectives, *params] + (["measured with"] if attack else [])
    cells = [[_fmt(r.get("trial_id")), *(_fmt(r.get(o)) for o in objectives),
              *(_fmt(r.get(p, r.get("params", {}).get(p))) for p in params)]
             + ([_fmt(r.get("eval"))] if attack else []) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _print_outcome(outcome) -> None:
    spec = outcome.spec
    params = list(spec.space)
    print()
    print(f"sweep {spec.name!r}: {outcome.n_trials} trials, {len(outcome.records)} finished, "
          f"{outcome.n_pruned} pruned, {outcome.n_failed} failed; "
          f"hypervolume {outcome.hypervolume:.4f}")
    print(f"Pareto front ({len(outcome.front)} configs; objectives on the test split):")
    print(format_front(outcome.front, list(spec.objective_names), params))
    print()
    print(f"Ray results:  {outcome.experiment_path}")
    print(f"MLflow:       experiment {spec.mlflow.experiment!r}, parent run "
          f"{outcome.parent_run_id} at {outcome.tracking_uri}")
    print(f"Browse it:    {mlflow_ui_command(outcome.tracking_uri)}")
    print(f"Front again:  tgo pareto {spec.name} --tracking-uri {outcome.tracking_uri} "
          f"--experiment {spec.mlflow.experiment}")


def _cmd_sweep_run(ns: argparse.Namespace) -> int:
    from tune.runner import run_sweep
    from tune.spec import load_spec

    spec = load_spec(ns.spec)
    if ns.num_samples is not None:
        spec = spec.model_copy(update={"num_samples": ns.num_samples})
    print(f"sweep {spec.name!r} (spec {spec.hash()}): {spec.num_samples} trials of "
          f"{spec.model.value} on {spec.dataset.value}, {spec.epochs} epochs, "
          f"{spec.max_concurrent} at a time, sampler {spec.sampler.type.value}, "
          f"pruner {spec.pruner.type.value}", flush=True)
    _print_outcome(run_sweep(spec, address=ns.address))
    return 0


def _cmd_sweep_resume(ns: argparse.Namespace) -> int:
    from tune.runner import resume_sweep

    _print_outcome(resume_sweep(ns.path, address=ns.address))
    return 0


def _cmd_pareto(ns: argparse.Namespace) -> int:
    from tune.browse import load_front

    front, objectives, params = load_front(ns.sweep, tracking_uri=ns.tracking_uri,
                                           experiment=ns.experiment)
    print(format_front(front, objectives, params))
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    sweep = sub.add_parser("sweep", help="run or resume a hyperparameter sweep")
    actions = sweep.add_subparsers(dest="sweep_command", required=True)
    run = actions.add_parser("run", help="run a sweep spec (YAML)")
    run.add_argument("spec", help="sweep spec, e.g. examples/digits-quick.yaml")
    run.add_argument("--address", default=None,
                     help="Ray cluster address (default: start Ray in this process)")
    run.add_argument("--num-samples", type=int, default=None, help="override num_samples")
    run.set_defaults(func=_cmd_sweep_run)
    resume = actions.add_parser("resume", help="continue a sweep from its Ray results folder")
    resume.add_argument("path", help="<storage_path>/<sweep name>, e.g. runs/digits-quick")
    resume.add_argument("--address", default=None)
    resume.set_defaults(func=_cmd_sweep_resume)

    pareto = sub.add_parser("pareto", help="print a sweep's Pareto front from MLflow")
    pareto.add_argument("sweep", help="sweep name, spec file, or Ray results folder")
    pareto.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default: the spec's, or sqlite:///./mlflow.db)")
    pareto.add_argument("--experiment", default=None, help="MLflow experiment (default: sweep name)")
    pareto.set_defaults(func=_cmd_pareto)
