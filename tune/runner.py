"""Run a sweep: Ray Tune runs the trials, Optuna samples and prunes, MLflow records.

``run_sweep(spec)`` starts (or joins) Ray, checks that the cluster can hold one trial and
that MLflow answers, and then runs a ``raytune.Tuner`` whose

* trainable is :func:`tune.trainable.run_trial` (``tgo.train.fit`` + final evaluation);
* searcher is :class:`tune.search.PruneAwareOptunaSearch` with the spec's multi-objective
  sampler and constraints;
* scheduler is :class:`tune.search.OptunaPruningScheduler` with the spec's pruner;
* callbacks log every trial to MLflow (:class:`tune.tracking.callback.MlflowSweepCallback`)
  and print one line per finished trial.

The spec is saved next to Ray's results (``<storage_path>/<name>/sweep_spec.yaml``), so
``resume_sweep(path)`` can pick the sweep up again with ``Tuner.restore``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Any, Sequence

import yaml

from tgo.errors import TgoError
from tune import versions
from tune.pareto import Objective, hypervolume, pareto_front
from tune.spec import SPEC_FILE, SweepSpec, load_spec
from tune.tracking import artifact_location, make_tracker, objectives_of

__all__ = ["SweepOutcome", "check_cluster_resources", "resume_sweep", "run_sweep"]

_log = logging.getLogger(__name__)


class ClusterTooSmall(TgoError, ValueError):
    """The spec asks for more resources per trial than any node of the cluster has."""


@dataclasses.dataclass
class SweepOutcome:
    """What a finished sweep left: finished-trial records, the front, where to look."""

    spec: SweepSpec
    experiment_path: Path
    records: list[dict[str, Any]]
    front: list[dict[str, Any]]
    hypervolume: float
    n_trials: int
    n_pruned: int
    n_failed: int
    epochs_trained: int
    wall_s: float
    parent_run_id: str | None
    tracking_uri: str
    #: Seconds the driver spent writing to MLflow (per-epoch metrics, run states, fronts,
    #: front models), over the whole sweep.
    mlflow_s: float = 0.0
    #: The MLflow experiment holding the parent run (for the UI's addresses).
    experiment_id: str | None = None
    #: Why the sweep ended before ``num_samples`` (its ``stop`` rule); None when it did not.
    stop_reason: str | None = None
    #: Trials stopped because the sweep ended (neither finished nor pruned).
    n_stopped: int = 0


def check_cluster_resources(spec: SweepSpec) -> None:
    """Fail at once when no node can ever hold one trial (Ray would wait forever)."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    need = {"CPU": spec.resources.cpu, "GPU": spec.resources.gpu}
    for kind, amount in need.items():
        if amount <= 0:
            continue
        best = max((n["Resources"].get(kind, 0.0) for n in nodes), default=0.0)
        if best + 1e-9 < amount:
            total = sum(n["Resources"].get(kind, 0.0) for n in nodes)
            raise ClusterTooSmall(
                f"resources.{kind.lower()}: each trial asks for {amount:g} {kind}, but the "
                f"largest node of the Ray cluster has {best:g} ({total:g} in all over "
                f"{len(nodes)} node(s)). Lower resources.{kind.lower()} in the spec or add "
                f"nodes with {kind}s; Ray itself would wait forever.")


def _check_address(address: str, timeout_s: float = 5.0) -> None:
    """Fail at once when nothing listens at a ``host:port`` or ``ray://host:port`` address
    (``ray.init`` would retry for minutes)."""
    import socket
    import urllib.parse

    if address == "auto":
        return
    parsed = urllib.parse.urlparse(address if "://" in address else f"gcs://{address}")
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise ValueError(f"address: expected host:port, ray://host:port or auto, "
                         f"got {address!r}")
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise ValueError(f"address: nothing answers at {host}:{port} ({exc.strerror or exc});"
                         " is the Ray cluster up?") from None


def _init_ray(address: str | None) -> None:
    import ray

    from tune.faults import VARIABLE
    from tune.redact import keep_credentials_out_of_ray_logs

    keep_credentials_out_of_ray_logs()   # Ray Tune would log the driver's AWS keys
    if address:
        _check_address(address)
    if ray.is_initialized():
        return
    forward = {VARIABLE: os.environ[VARIABLE]} if os.environ.get(VARIABLE) else {}
    if address:
        ray.init(address=address, log_to_driver=True,
                 runtime_env={"env_vars": forward} if forward else None)
    else:
        ray.init(include_dashboard=False, log_to_driver=True,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", **forward}})


def _save_spec(spec: SweepSpec, experiment_path: Path) -> None:
    experiment_path.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
    (experiment_path / SPEC_FILE).write_text(text)


def _build_tuner(spec: SweepSpec, experiment_path: Path, parent_run_id: str | None):
    from ray import tune as raytune

    from tune.search import make_scheduler, make_searcher, make_stopper
    from tune.trainable import make_trainable

    scheduler = make_scheduler(spec)
    searcher = make_searcher(spec, scheduler)
    callbacks = _callbacks(spec, experiment_path, scheduler, parent_run_id)
    stopper = make_stopper(spec, objectives_of(spec))
    tune_config = raytune.TuneConfig(
        search_alg=searcher, scheduler=scheduler, num_samples=spec.num_samples,
        max_concurrent_trials=spec.max_concurrent, reuse_actors=True)
    run_config = raytune.RunConfig(
        name=spec.name, storage_path=spec.storage_path, callbacks=callbacks, verbose=1,
        stop=stopper,
        failure_config=raytune.FailureConfig(max_failures=spec.max_failures),
        checkpoint_config=raytune.CheckpointConfig(num_to_keep=2))
    return make_trainable(spec), tune_config, run_config


def _never_pruned(trial_id: str) -> None:
    """The prune lookup of a sweep without a pruner."""
    return None


def _driver_env_defaults() -> None:
    # Ray Tune snapshots the sweep's state every 10 s or more by default; a trial that
    # ends between a snapshot and a dead driver runs again on resume. Sweep states are
    # small: every 2 s narrows that window (unless the user set it).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")


def _callbacks(spec: SweepSpec, experiment_path: Path, scheduler,
               parent_run_id: str | None = None) -> list:
    """The MLflow and progress callbacks; they ask ``scheduler`` which trials it pruned.

    Ray pickles the scheduler (in the TuneConfig) and these callbacks (in the RunConfig)
    into one ``tuner.pkl``, so after ``Tuner.restore`` they still share one scheduler, the
    one the searcher's checkpoint restores the prune records into.
    """
    from tgo.checkpoint import load_model
    from tune.tracking.callback import MlflowSweepCallback
    from tune.progress import ProgressCallback

    _driver_env_defaults()
    tracker = make_tracker(spec, parent_run_id)
    lookup = scheduler.prune_record if scheduler is not None else _never_pruned
    return [MlflowSweepCallback(tracker, pruned_lookup=lookup, load_model=load_model,
                                experiment_path=experiment_path),
            ProgressCallback(spec, pruned_lookup=lookup)]


def _outcome(spec: SweepSpec, results, experiment_path: Path, callbacks: list,
             wall_s: float, stopper=None) -> SweepOutcome:
    objectives = objectives_of(spec)
    logger = next(c for c in callbacks if hasattr(c, "tracker"))
    reason = getattr(stopper, "reason", None)
    if reason and logger.tracker.parent_run_id:
        _tag_stop_reason(logger.tracker, reason)
    records, n_failed, n_stopped = [], 0, 0
    for res in results:
        last = res.metrics or {}
        if res.error is not None:
            n_failed += 1
            continue
        if not last.get("done_training"):
            n_stopped += logger.pruned_lookup(last.get("trial_id")) is None
            continue
        record = {"trial_id": last.get("trial_id"), **(res.config or {})}
        record.update({o.name: last.get(o.name) for o in objectives})
        record["eval"] = last.get("eval_description")
        records.append(record)
    front = pareto_front(records, objectives)
    hv = hypervolume([[r[o.name] for o in objectives] for r in front], objectives) if front \
        else 0.0
    n_pruned = len(results) - len(records) - n_failed - n_stopped
    epochs = sum(int((res.metrics or {}).get("epoch", 0)) for res in results)
    return SweepOutcome(spec, experiment_path, records, front, hv, len(results), n_pruned,
                        n_failed, epochs, wall_s, logger.tracker.parent_run_id,
                        spec.mlflow.tracking_uri, getattr(logger, "seconds", 0.0),
                        logger.tracker.experiment_id, reason, n_stopped)


def _read_warm_start(spec: SweepSpec):
    if spec.warm_start is None:
        return None
    from tune.search.warm_start import load_warm_start

    warm = load_warm_start(spec, objectives_of(spec))
    print(f"[tgo] warm start: {warm.summary} trials of sweep {spec.warm_start.from_sweep!r} "
          f"seed the sampler", flush=True)
    return warm


def _apply_warm_start(warm, searcher, callbacks: list) -> None:
    """Seed the sampler and link the earlier sweep's parent run from the new one."""
    from tune.search.warm_start import seed_study
    from tune.tracking import schema
    from tune.tracking.urls import run_url

    seed_study(searcher.study, warm.trials)
    tracker = next(c.tracker for c in callbacks if hasattr(c, "tracker"))
    tracker.start()
    tracker.set_tags(tracker.parent_run_id, {
        schema.WARM_START_RUN: warm.parent_run_id,
        schema.WARM_START_TRIALS: warm.summary,
        schema.WARM_START_URL: run_url(warm.tracking_uri, warm.experiment_id,
                                       warm.parent_run_id)})


def _tag_stop_reason(tracker, reason: str) -> None:
    from tune.tracking import TrackingUnavailable, schema

    print(f"[tgo] the sweep stopped early: {reason}", flush=True)
    try:
        tracker.set_tags(tracker.parent_run_id, {schema.STOP_REASON: reason})
    except TrackingUnavailable as exc:
        _log.warning("could not tag the parent run with why the sweep stopped: %s", exc)


def run_sweep(spec: SweepSpec, *, address: str | None = None,
              parent_run_id: str | None = None, callbacks: Sequence[Any] = ()
              ) -> SweepOutcome:
    """Run ``spec`` to the end on a local Ray (or the cluster at ``address``).

    ``parent_run_id`` makes the sweep log under an MLflow parent run created beforehand
    (``tgo submit`` creates it before the Ray Job starts, so it can print its URL); it must
    be a sweep run of the same spec hash. ``callbacks``: more Ray Tune callbacks (picklable),
    after the sweep's own (``benchmarks/search.py`` records every result with one). Where results go is resolved here, once
    (:meth:`SweepSpec.resolved`: ``$MLFLOW_TRACKING_URI`` and the working directory).
    """
    from ray import tune as raytune

    from tune.tracking import check_reachable

    spec = spec.resolved()
    logging.getLogger("optuna").setLevel(logging.WARNING)
    check_reachable(spec.mlflow.tracking_uri)
    _init_ray(address)
    check_cluster_resources(spec)
    experiment_path = Path(spec.storage_path) / spec.name
    if (experiment_path / "tuner.pkl").exists():
        raise ValueError(f"storage_path: a sweep named {spec.name!r} already exists at "
                         f"{experiment_path}; resume it with `tgo sweep resume "
                         f"{experiment_path}` or give the spec another name")
    warm = _read_warm_start(spec)   # a bad warm_start fails before anything is written
    _save_spec(spec, experiment_path)
    versions.write(experiment_path)
    trainable, tune_config, run_config = _build_tuner(spec, experiment_path, parent_run_id)
    run_config.callbacks.extend(callbacks)
    callbacks = run_config.callbacks
    if warm is not None:
        _apply_warm_start(warm, tune_config.search_alg, callbacks)
    tuner = raytune.Tuner(trainable, tune_config=tune_config, run_config=run_config)
    start = time.perf_counter()
    results = tuner.fit()
    return _outcome(spec, results, experiment_path, callbacks, time.perf_counter() - start,
                    run_config.stop)


def resume_sweep(path: str | os.PathLike, *, address: str | None = None) -> SweepOutcome:
    """Continue the sweep whose Ray results live at ``path`` (``<storage_path>/<name>``)."""
    from ray import tune as raytune

    from tune.tracking import check_reachable

    experiment_path = Path(path).expanduser().resolve()
    if not (experiment_path / SPEC_FILE).is_file():
        raise FileNotFoundError(f"path: no sweep at {experiment_path} (expected {SPEC_FILE} "
                                "there, written when the sweep started)")
    spec = load_spec(experiment_path / SPEC_FILE).resolved()  # saved resolved: a no-op
    versions.check_resumable(experiment_path)   # refuses before anything is touched
    logging.getLogger("optuna").setLevel(logging.WARNING)
    if not any(experiment_path.glob("experiment_state-*.json")):
        # The driver died before Ray's first snapshot: Ray would "restart" from tuner.pkl
        # alone, and no trial of it was recorded. Start the sweep again instead; the
        # MLflow parent run (not finished) is reused and its unknown children closed.
        _log.info("Ray saved no state of %s before its driver stopped: starting the sweep "
                  "again from its saved spec", experiment_path)
        (experiment_path / "tuner.pkl").unlink(missing_ok=True)
        return run_sweep(spec, address=address)
    check_reachable(spec.mlflow.tracking_uri)
    _driver_env_defaults()
    _init_ray(address)
    check_cluster_resources(spec)
    from tune.trainable import make_trainable

    tuner = raytune.Tuner.restore(str(experiment_path), trainable=make_trainable(spec),
                                  resume_unfinished=True, resume_errored=True)
    # Ray restores the TuneConfig (searcher + scheduler) and RunConfig (callbacks) it
    # pickled at the start; the searcher carries the scheduler's saved state.
    run_config = tuner._local_tuner._run_config  # noqa: SLF001 (no public accessor)
    callbacks = run_config.callbacks
    _keep_parent_run(callbacks, experiment_path)
    start = time.perf_counter()
    results = tuner.fit()
    return _outcome(spec, results, experiment_path, callbacks, time.perf_counter() - start,
                    run_config.stop)


def _keep_parent_run(callbacks: list, experiment_path: Path) -> None:
    """Point the restored tracker at the parent run the sweep logged to (journal's
    ``mlflow_sweep.json``): a tracker pickled before its first start knows none, and would
    open a new parent once the old one is FINISHED (a resumed sweep that had ended)."""
    from tune.tracking import journal

    parent = (journal.read_sweep_info(experiment_path) or {}).get("parent_run_id")
    tracker = next(c.tracker for c in callbacks if hasattr(c, "tracker"))
    if parent and tracker.parent_run_id is None:
        tracker.use_parent(parent)
