"""``tgo sweep run|resume`` and ``tgo pareto``: the sweep layer of the ``tgo`` command.

Usage:
    tgo sweep run examples/digits-quick.yaml          # local Ray, sqlite MLflow store in cwd
    tgo sweep run SPEC --address ray://head:10001      # an existing Ray cluster
    tgo sweep resume runs/digits-quick                 # continue after a crash
    tgo sweep sync runs/digits-quick                   # backfill MLflow after an outage
    tgo pareto digits-quick                            # the front, as a table
    tgo submit SPEC --address http://HEAD:8265 --tracking-uri http://MLFLOW:5000 [--wait]
    tgo jobs list | status ID | logs ID [--follow] | stop ID   [--address URL]
    tgo pick digits-quick --require "clean_acc>=0.9" --maximize robust_acc --register NAME
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

__all__ = ["add_subcommands", "format_front"]


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
    from tune.tracking import urls

    spec = outcome.spec
    params = list(spec.space)
    print()
    print(f"sweep {spec.name!r}: {outcome.n_trials} trials, {len(outcome.records)} finished, "
          f"{outcome.n_pruned} pruned, {outcome.n_failed} failed; "
          f"hypervolume {outcome.hypervolume:.4f}")
    if outcome.n_trials:
        print(f"MLflow logging took {outcome.mlflow_s:.1f} s of the driver's "
              f"{outcome.wall_s:.0f} s ({1000 * outcome.mlflow_s / outcome.n_trials:.0f} ms "
              "per trial)")
    print(f"Pareto front ({len(outcome.front)} configs; objectives on the test split):")
    print(format_front(outcome.front, list(spec.objective_names), params))
    print()
    print(f"Ray results:  {outcome.experiment_path}")
    print(f"MLflow:       experiment {spec.mlflow.experiment!r}, parent run "
          f"{outcome.parent_run_id} at {outcome.tracking_uri}")
    uri, exp, run = outcome.tracking_uri, outcome.experiment_id, outcome.parent_run_id
    if command := urls.mlflow_ui_command(uri):
        print(f"Browse it:    {command}   (then open the links below)")
    if exp is not None and run is not None:
        print(f"Its runs:     {urls.experiment_url(uri, exp)}")
        print(f"Sweep run:    {urls.run_url(uri, exp, run)}")
        print(f"Front plot:   {urls.run_url(uri, exp, run, artifact='pareto.html')}")
    print(f"Front again:  tgo pareto {spec.name} --tracking-uri {outcome.tracking_uri} "
          f"--experiment {spec.mlflow.experiment}")


def _console_log() -> None:
    """Show this package's INFO messages (resume, outage, sync) on stdout, once."""
    logger = logging.getLogger("tune")
    if not any(getattr(h, "_tgo", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("[tgo] %(message)s"))
        handler._tgo = True  # noqa: SLF001 (marks our handler)
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _positive_int(text: str) -> int:
    """argparse type of a count (``--num-samples``): an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or value > 2**63 - 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _cmd_sweep_run(ns: argparse.Namespace) -> int:
    from tune.runner import run_sweep
    from tune.spec import load_spec

    spec = load_spec(ns.spec).resolved()  # where results go, before anything prints
    _console_log()
    if ns.num_samples is not None:
        spec = spec.model_copy(update={"num_samples": ns.num_samples})
    print(f"sweep {spec.name!r} (spec {spec.hash()}): {spec.num_samples} trials of "
          f"{spec.model.value} on {spec.dataset.value}, {spec.epochs} epochs, "
          f"{spec.max_concurrent} at a time, sampler {spec.sampler.type.value}, "
          f"pruner {spec.pruner.type.value}", flush=True)
    _print_outcome(run_sweep(spec, address=ns.address, parent_run_id=ns.parent_run_id))
    return 0


def _cmd_sweep_resume(ns: argparse.Namespace) -> int:
    from tune.runner import resume_sweep

    _console_log()
    _print_outcome(resume_sweep(ns.path, address=ns.address))
    return 0


def _cmd_sweep_sync(ns: argparse.Namespace) -> int:
    from tune.tracking.sync import sync_sweep

    _console_log()
    print(sync_sweep(ns.path))
    return 0


def _cmd_pareto(ns: argparse.Namespace) -> int:
    from tune.tracking.reader import load_front

    front, objectives, params = load_front(ns.sweep, tracking_uri=ns.tracking_uri,
                                           experiment=ns.experiment)
    print(format_front(front, objectives, params))
    return 0


# ----------------------------------------------------------------------------- Ray Jobs


def _jobs_client(ns: argparse.Namespace):
    from tune.jobs import JobsClient

    return JobsClient(ns.address, token_file=ns.token_file)


def _wait_for_job(client, job_id: str) -> int:
    from tune.jobs import close_parent_run

    for chunk in client.follow(job_id):
        print(chunk, end="", flush=True)
    status = client.wait(job_id)
    info = client.info(job_id)
    print(f"\njob {job_id}: {status}" + (f" ({info.message})" if info.message else ""))
    _close_parent(close_parent_run, info, status)
    return 0 if status == "SUCCEEDED" else 1


def _close_parent(close, info, status: str) -> None:
    from tune.jobs import META_PARENT_RUN

    try:
        mark = close(info, status)
    except Exception as exc:  # noqa: BLE001 - the job's outcome stands; MLflow is a courtesy
        print(f"warning: could not close the MLflow parent run: {type(exc).__name__}: {exc}",
              file=sys.stderr)
    else:
        if mark:
            print(f"MLflow parent run {info.metadata[META_PARENT_RUN]} marked {mark}")


def _cmd_submit(ns: argparse.Namespace) -> int:
    from tune.jobs import JobError, JobsClient, submit_sweep
    from tune.tracking import TrackingUnavailable

    try:
        sweep = submit_sweep(ns.spec, address=ns.address, tracking_uri=ns.tracking_uri,
                             token_file=ns.token_file, storage_path=ns.storage_path,
                             pip=ns.pip, python=ns.python)
    except TrackingUnavailable as exc:
        raise JobError(f"{exc}; the sweep was not submitted") from None
    for warning in sweep.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    mlflow_run = sweep.mlflow_url or f"parent run {sweep.parent_run_id} in {sweep.tracking_uri}"
    print(f"submitted sweep {sweep.sweep_name!r} as Ray Job {sweep.job_id}")
    print(f"job id:         {sweep.job_id}")
    print(f"Ray dashboard:  {sweep.dashboard_url}")
    print(f"MLflow run:     {mlflow_run}")
    print(f"Ray results:    {sweep.storage_path} (on the cluster)")
    print(f"follow it:      tgo jobs logs {sweep.job_id} --follow --address {sweep.address}")
    print(f"pick from it:   tgo pick {sweep.sweep_name} --tracking-uri {sweep.tracking_uri} "
          f"--experiment {sweep.experiment} --require ... --maximize ...", flush=True)
    if not ns.wait:
        return 0
    return _wait_for_job(JobsClient(sweep.address, token_file=ns.token_file), sweep.job_id)


def _cmd_jobs_list(ns: argparse.Namespace) -> int:
    from tune.jobs import format_jobs

    print(format_jobs(_jobs_client(ns).list()))
    return 0


def _cmd_jobs_status(ns: argparse.Namespace) -> int:
    from tune.jobs import describe_job

    client = _jobs_client(ns)
    print(describe_job(client.info(ns.job_id), client.dashboard_url(ns.job_id)))
    return 0


def _cmd_jobs_logs(ns: argparse.Namespace) -> int:
    client = _jobs_client(ns)
    if ns.follow:
        return _wait_for_job(client, ns.job_id)
    print(client.logs(ns.job_id), end="")
    return 0


def _cmd_jobs_stop(ns: argparse.Namespace) -> int:
    from tune.jobs import close_parent_run

    client = _jobs_client(ns)
    status = client.stop(ns.job_id, wait_s=ns.wait_s)
    print(f"job {ns.job_id}: {status}")
    if status in ("STOPPED", "FAILED"):
        _close_parent(close_parent_run, client.info(ns.job_id), status)
    return 0


# ----------------------------------------------------------------------------- picking


def _cmd_pick(ns: argparse.Namespace) -> int:
    import yaml

    from tune import deploy as picking
    from tune.tracking.reader import load_front_members

    if sum(map(bool, (ns.maximize, ns.minimize, ns.knee))) > 1:
        raise ValueError("pick: expected one of --maximize, --minimize and --knee, got more")
    requirements = [picking.Requirement.parse(text) for text in ns.require]
    front = load_front_members(ns.sweep, tracking_uri=ns.tracking_uri,
                               experiment=ns.experiment)
    result = picking.pick(front, requirements, ns.maximize or ns.minimize,
                          "min" if ns.minimize else "max", knee=ns.knee)
    print(picking.format_pick(result))
    chosen = result.chosen
    if chosen is None:
        return 1
    config = picking.member_config(front, chosen)
    check: dict = {}
    if ns.verify and chosen.model_uri is not None:
        model = picking.load_model(chosen.model_uri, front.tracking_uri)
        acc, n = picking.measure_clean_accuracy(model, config, noise=False)
        check = {"clean_acc_noise_off": acc, "n_test": n, "noise": "off",
                 "split": f"test split of {config.dataset.value} (seed {config.seed})"}
        print(f"clean accuracy of its model: {acc:.4f} on the {n} test examples, noise off")
    registration = None
    if ns.register:
        registration = picking.register(
            result, ns.register,
            extra_tags={f"check.{k}": v for k, v in check.items()})
        print(f"registered: {registration.uri} (version {registration.version} of "
              f"{registration.name!r}, alias {registration.alias!r})")
        if ns.verify:
            verified = picking.check_deployment(
                registration.uri, front.tracking_uri, config,
                expected_noise_off=check.get("clean_acc_noise_off"),
                reported_clean_acc=chosen.metrics.get("clean_acc"),
                eval_n=chosen.evaluation.get("eval_n"))
            print("verified " + verified.describe())
            if not verified.ok:
                raise ValueError(f"register: {registration.uri} does not reproduce the "
                                 f"accuracy measured at pick time:\n{verified.describe()}")
            check["verified"] = registration.uri
    doc = picking.deploy_document(result, config, registration=registration, check=check or None)
    out = Path(ns.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("# written by tgo pick; load the model (weights only, no unpickling) "
                   f"with tune.deploy.load_model({doc['model_uri']!r}, TRACKING_URI)\n"
                   + yaml.safe_dump(doc, sort_keys=False))
    print(f"wrote {out}")
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    sweep = sub.add_parser("sweep", help="run or resume a hyperparameter sweep")
    actions = sweep.add_subparsers(dest="sweep_command", required=True)
    run = actions.add_parser("run", help="run a sweep spec (YAML)")
    run.add_argument("spec", help="sweep spec, e.g. examples/digits-quick.yaml")
    run.add_argument("--address", default=None,
                     help="Ray cluster address (default: start Ray in this process)")
    run.add_argument("--num-samples", type=_positive_int, default=None,
                     help="override num_samples")
    run.add_argument("--parent-run-id", default=None,
                     help="log under this existing MLflow parent run (tgo submit makes one)")
    run.set_defaults(func=_cmd_sweep_run)
    resume = actions.add_parser("resume", help="continue a sweep from its Ray results folder")
    resume.add_argument("path", help="<storage_path>/<sweep name>, e.g. runs/digits-quick")
    resume.add_argument("--address", default=None)
    resume.set_defaults(func=_cmd_sweep_resume)
    sync = actions.add_parser("sync", help="log to MLflow what a sweep kept during an outage")
    sync.add_argument("path", help="<storage_path>/<sweep name>, e.g. runs/digits-quick")
    sync.set_defaults(func=_cmd_sweep_sync)

    pareto = sub.add_parser("pareto", help="print a sweep's Pareto front from MLflow")
    pareto.add_argument("sweep", help="sweep name, spec file, or Ray results folder")
    pareto.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default: the spec's, or sqlite:///./mlflow.db)")
    pareto.add_argument("--experiment", default=None, help="MLflow experiment (default: sweep name)")
    pareto.set_defaults(func=_cmd_pareto)

    _add_job_commands(sub)
    _add_pick_command(sub)


def _ray_options() -> argparse.ArgumentParser:
    from tune.jobs import default_address

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--address", default=default_address(),
                        help="Ray dashboard URL (default: $RAY_ADDRESS if it is http(s), "
                             "else http://127.0.0.1:8265)")
    common.add_argument("--token-file", default=None,
                        help="file holding the cluster's auth token (default: "
                             "$RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)")
    return common


def _add_job_commands(sub: argparse._SubParsersAction) -> None:
    common = _ray_options()
    submit = sub.add_parser("submit", parents=[common],
                            help="run a sweep spec on a Ray cluster as a Ray Job")
    submit.add_argument("spec", help="sweep spec (YAML), checked here before submitting")
    submit.add_argument("--tracking-uri", default=None,
                        help="MLflow store the job logs to (needed when the spec's is a "
                             "local file/SQLite store), e.g. http://mlflow-host:5000")
    submit.add_argument("--storage-path", default=None,
                        help="Ray results folder on the cluster (shared path or s3://... on a "
                             "multi-machine cluster; default: the spec's, per job)")
    submit.add_argument("--pip", action="store_true",
                        help="install requirements.lock per job, Ray excepted (default: the "
                             "cluster's Python already has it)")
    submit.add_argument("--python", default="python",
                        help="the cluster's Python that runs the sweep (default: python)")
    submit.add_argument("--wait", action="store_true",
                        help="follow the job's log until it ends; exit 1 unless it succeeded")
    submit.set_defaults(func=_cmd_submit)

    jobs = sub.add_parser("jobs", help="list, inspect, follow or stop Ray Jobs")
    actions = jobs.add_subparsers(dest="jobs_command", required=True)
    listing = actions.add_parser("list", parents=[common], help="jobs of the cluster")
    listing.set_defaults(func=_cmd_jobs_list)
    status = actions.add_parser("status", parents=[common], help="one job's status")
    status.add_argument("job_id")
    status.set_defaults(func=_cmd_jobs_status)
    logs = actions.add_parser("logs", parents=[common], help="one job's log")
    logs.add_argument("job_id")
    logs.add_argument("--follow", action="store_true", help="stream it until the job ends")
    logs.set_defaults(func=_cmd_jobs_logs)
    stop = actions.add_parser("stop", parents=[common], help="stop a job")
    stop.add_argument("job_id")
    stop.add_argument("--wait-s", type=float, default=30.0,
                      help="seconds to wait for the job to end (default: 30)")
    stop.set_defaults(func=_cmd_jobs_stop)


def _add_pick_command(sub: argparse._SubParsersAction) -> None:
    pick = sub.add_parser("pick", help="choose a deployable config from a sweep's front")
    pick.add_argument("sweep", help="sweep name, spec file, or Ray results folder")
    pick.add_argument("--require", action="append", default=[], metavar="'NAME OP NUMBER'",
                      help="a requirement on a metric or a config field, e.g. "
                           "'clean_acc>=0.9' or 'timesteps<=4' (op: >= <= > < ==); repeatable")
    pick.add_argument("--maximize", default=None, metavar="NAME",
                      help="pick the feasible member with the highest NAME (default: the "
                           "sweep's first objective)")
    pick.add_argument("--minimize", default=None, metavar="NAME",
                      help="pick the feasible member with the lowest NAME")
    pick.add_argument("--knee", action="store_true",
                      help="pick the knee: the feasible member farthest beyond the line "
                           "between the front's ends, objectives rescaled to [0, 1]")
    pick.add_argument("--register", default=None, metavar="NAME",
                      help="register its model as a new version of NAME, alias 'deploy'")
    pick.add_argument("--out", default="deploy.yaml", help="where to write the deploy file "
                                                           "(default: deploy.yaml)")
    pick.add_argument("--no-verify", dest="verify", action="store_false",
                      help="skip re-measuring the clean accuracy of the model (needs its "
                           "data set here)")
    pick.add_argument("--tracking-uri", default=None,
                      help="MLflow tracking URI (default: the spec's, or sqlite:///./mlflow.db)")
    pick.add_argument("--experiment", default=None, help="MLflow experiment (default: sweep name)")
    pick.set_defaults(func=_cmd_pick)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``tgo`` console script: the library's commands (:mod:`tgo.cli`) and the sweep
    layer's."""
    from tgo import cli as library_cli

    return library_cli.main(argv, extend=add_subcommands)


if __name__ == "__main__":
    sys.exit(main())
