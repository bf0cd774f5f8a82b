"""The Ray Tune trainable: one trial = ``tgo.train.fit`` + the final test evaluation.

Every epoch is reported with ``ray.tune.report(metrics, checkpoint=...)`` (in Ray 2.60
``ray.train.report`` fails inside Tune). A retried or resumed trial continues from its
last checkpoint; when that one cannot be read (cut short by a crash mid-upload, damaged), it
continues from the older checkpoint Ray keeps beside it, else starts again from epoch 1, and
says which in the log. Only the last result of a trial that trained every epoch holds the
objectives (``clean_acc``, ``robust_acc``, ...) and ``done_training = True``; see
docs/CONTRACTS.md.
"""

from __future__ import annotations

import json
import logging
import posixpath
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from ray import tune as raytune

from tgo.checkpoint import CHECKPOINT_FILE
from tgo.final_eval import EvalSettings, final_evaluation
from tgo.train import TrainState, fit, load_resume_state
from tune import faults
from tune.tracking import journal
from tune.spec import SweepSpec

__all__ = ["CONFIG_KEY", "NODE_KEY", "make_trainable", "run_trial"]

#: Result key of the trial's full TrainConfig (Ray overwrites ``config`` with the sampled
#: params).
CONFIG_KEY = "train_config"
#: Result key of the Ray node id the trial ran on (logged as the MLflow tag ``ray.node_id``).
NODE_KEY = "ray_node_id"

#: The final evaluation, saved beside the last epoch's checkpoint: a trial resumed from it
#: reports it again instead of attacking the test split a second time.
FINAL_FILE = "final.json"

_log = logging.getLogger(__name__)


def _report(metrics: Mapping[str, Any], state: TrainState,
            final: Mapping[str, Any] | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="tgo-ckpt-") as folder:
        state.save(folder)
        if final is not None:
            (Path(folder) / FINAL_FILE).write_text(json.dumps(journal.jsonable(dict(final))))
        raytune.report(dict(metrics), checkpoint=raytune.Checkpoint.from_directory(folder))


def run_trial(params: dict[str, Any], spec: SweepSpec) -> None:
    """Train one configuration of ``spec`` and report each epoch to Ray Tune."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    cpus = max(1, int(spec.resources.cpu))
    torch.set_num_threads(cpus)
    config = spec.train_config(params)
    settings = EvalSettings(**spec.evaluation.model_dump())
    resume_from, saved_final = _resume_point(raytune.get_checkpoint())

    def report(metrics: dict[str, float], state: TrainState) -> None:
        faults.inject(params, state.epoch, state.model)   # tests and drills only
        result: dict[str, Any] = dict(metrics)
        if state.epoch == 1:   # the full TrainConfig once, for the MLflow child run's params
            result[CONFIG_KEY] = config.to_dict()
        result[NODE_KEY] = node_id   # which Ray node ran this epoch (a retry may move)
        final = None
        if state.epoch == config.epochs:
            final = final_evaluation(state.model, config, state.splits, settings,
                                     generator=state.noise_rng)
            result.update(final, done_training=True)
        _report(result, state, final)

    result = fit(config, report, resume_from=resume_from)
    if not result.history:  # resumed after the last epoch's checkpoint: report the end
        final = saved_final or final_evaluation(result.model, config, result.splits, settings,
                                                generator=result.state.noise_rng)
        _report({"epoch": config.epochs, NODE_KEY: node_id, **final,
                 "done_training": True}, result.state, final)


def _older_checkpoints(latest: raytune.Checkpoint) -> list[raytune.Checkpoint]:
    """The trial's other checkpoints older than ``latest`` (Ray keeps ``num_to_keep``),
    newest first."""
    import pyarrow.fs

    parent, name = posixpath.split(latest.path.rstrip("/"))
    try:
        infos = latest.filesystem.get_file_info(pyarrow.fs.FileSelector(parent))
    except OSError:
        return []
    older = sorted((i.path for i in infos if i.type == pyarrow.fs.FileType.Directory
                    and posixpath.basename(i.path).startswith("checkpoint_")
                    and posixpath.basename(i.path) < name), reverse=True)
    return [raytune.Checkpoint(path, latest.filesystem) for path in older]


def _resume_point(latest: raytune.Checkpoint | None) -> tuple[Path | None, dict | None]:
    """(checkpoint file to resume from, saved final evaluation) of a retried or resumed
    trial: its latest checkpoint, else an older one, else (None, None): from scratch."""
    if latest is None:
        return None, None
    for candidate in [latest, *_older_checkpoints(latest)]:
        try:
            folder = Path(candidate.to_directory())
            load_resume_state(folder / CHECKPOINT_FILE)
        except (ValueError, OSError) as exc:
            _log.warning("trial checkpoint %s cannot be resumed from: %s", candidate.path, exc)
            continue
        if candidate is not latest:
            _log.warning("the trial continues from its older checkpoint %s (epochs after it "
                         "are trained again)", candidate.path)
        return folder / CHECKPOINT_FILE, _saved_final(folder, candidate.path)
    _log.warning("no readable checkpoint of this trial is left (latest: %s): it restarts from "
                 "scratch, epoch 1", latest.path)
    return None, None


def _saved_final(folder: Path, stored: str) -> dict | None:
    """The final evaluation saved beside a last-epoch checkpoint (``stored``: where Ray
    keeps it); None when absent or unreadable (it is then measured again)."""
    path, name = folder / FINAL_FILE, posixpath.join(stored, FINAL_FILE)
    if not path.is_file():
        return None
    try:
        final = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:   # UnicodeDecodeError is a ValueError
        _log.warning("%s cannot be read (%s): the final evaluation runs again", name, exc)
        return None
    if not isinstance(final, dict):
        _log.warning("%s holds no JSON object: the final evaluation runs again", name)
        return None
    return journal.revived(final)


def make_trainable(spec: SweepSpec):
    """The trainable for ``raytune.Tuner``, with the spec bound and resources set."""
    trainable = raytune.with_parameters(run_trial, spec=spec)
    return raytune.with_resources(trainable, {"cpu": spec.resources.cpu,
                                              "gpu": spec.resources.gpu})
