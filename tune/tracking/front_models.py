"""What the Pareto front leaves in MLflow: the front files of the parent, the members' models.

:func:`write_front_files` writes ``pareto.csv``, ``pareto.json``, ``pareto.png`` and
``pareto.html`` into a folder that :class:`tune.tracking.SweepTracker` uploads onto the
parent run. :func:`log_pytorch_model` stores a trained model as an MLflow 3 *logged model*
of a child run through an explicit :class:`mlflow.MlflowClient` (``mlflow.pytorch.log_model``
would use the fluent active run and the global tracking URI instead).

Models are pickled (``serialization_format="pickle"``: MLflow 3's default ``pt2`` needs an
input example and loads back a GraphModule, not our ``SpikingClassifier``). Pickles name
their classes by module, so the ``tgo`` package goes along as ``code/tgo``
(``code_paths``): with the pip requirements (torch, spikingjelly, cloudpickle, pinned to
the versions here; ``tgo-sweep`` itself is not on PyPI) the model loads on a machine
without this project. The requirements are explicit because inferring them costs 5-12 s
per model.

Example:
    >>> uri = log_pytorch_model(client, exp_id, run_id, model, cfg.to_dict())  # doctest: +SKIP
    >>> mlflow.pytorch.load_model(f"runs:/{run_id}/model")                      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import csv
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from tune.pareto import Objective

#: Weights-only copy of the trial checkpoint inside each logged model.
SAFE_CHECKPOINT = "tgo-checkpoint.pt"

__all__ = ["SAFE_CHECKPOINT", "default_code_paths", "default_pip_requirements", "log_pytorch_model",
           "write_front_files"]

_log = logging.getLogger(__name__)
_RUNTIME_PACKAGES = ("torch", "spikingjelly", "cloudpickle")


# ----------------------------------------------------------------------------- front files


def _member(record: Mapping[str, Any], rank: int, objs: Sequence[Objective]) -> dict[str, Any]:
    return {"trial_id": record["trial_id"], "run_id": record["run_id"], "rank": rank,
            "objectives": {o.name: record.get(o.name) for o in objs},
            "eval": {k: v for k, v in record.items() if k.startswith("eval_")},
            "config": dict(record.get("params") or {})}


def _plot_record(record: Mapping[str, Any], rank: int, objs: Sequence[Objective]) -> dict:
    out = {f"param.{k}": v for k, v in (record.get("params") or {}).items()}
    out.update({"trial_id": record["trial_id"], "run_id": record["run_id"], "rank": rank})
    out.update({o.name: record.get(o.name) for o in objs})
    return out


def write_front_files(folder: Path, records: Sequence[Mapping[str, Any]], ranks: Sequence[int],
                      objectives: Sequence[Objective], hypervolume: float,
                      meta: Mapping[str, Any]) -> None:
    """Write the four front files of ``records`` (finished trials) into ``folder``.

    ``pareto.json`` holds ``meta``, the objectives, the hypervolume, every trial's rank and
    the front members (config, objective values, rank 0, ``eval_*`` attack description);
    ``pareto.csv`` one row per member (objectives, ``eval_*``, then ``param.*`` columns).
    The plots (from :mod:`tune.plots`, two objectives or more) show every finished trial;
    a plot that fails is logged as a warning and left out, the data files are always written.
    """
    objs = list(objectives)
    members = [_member(r, k, objs) for r, k in zip(records, ranks) if k == 0]
    doc = {**meta, "objectives": [{"name": o.name, "direction": o.direction.value,
                                   "reference": o.reference} for o in objs],
           "n_finished": len(records), "hypervolume": hypervolume, "front": members,
           "ranks": {str(r["trial_id"]): k for r, k in zip(records, ranks)}}
    (folder / "pareto.json").write_text(json.dumps(doc, indent=2, default=str))

    rows = [{"trial_id": m["trial_id"], "run_id": m["run_id"], "rank": 0, **m["objectives"],
             **m["eval"], **{f"param.{k}": v for k, v in m["config"].items()}}
            for m in members]
    head = ["trial_id", "run_id", "rank", *(o.name for o in objs)]
    rest = sorted({k for row in rows for k in row} - set(head),
                  key=lambda k: (k.startswith("param."), k))
    with open(folder / "pareto.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=head + rest)
        writer.writeheader()
        writer.writerows(rows)

    points = [_plot_record(r, k, objs) for r, k in zip(records, ranks)]
    swept = sorted(k for k in {k for p in points for k in p if k.startswith("param.")}
                   if len({json.dumps(p.get(k), default=str) for p in points}) > 1)
    title = f"{meta.get('sweep_name', 'sweep')}: {len(members)} on the front of {len(records)}"
    for name in ("pareto_png", "pareto_html") if len(objs) >= 2 else ():  # x and y needed
        path = folder / f"pareto.{name.split('_')[1]}"
        try:
            from tune import plots

            getattr(plots, name)(points, objs, path, title=title,
                                 label_keys=("trial_id", *swept))
        except Exception as exc:  # a broken plot must not stop the sweep; the data is saved
            _log.warning("could not draw %s: %s: %s", path.name, type(exc).__name__, exc)


# ----------------------------------------------------------------------------- models


def default_pip_requirements() -> list[str]:
    """``torch``, ``spikingjelly`` and ``cloudpickle`` pinned to the installed versions."""
    from packaging.version import Version

    out = []
    for name in _RUNTIME_PACKAGES:
        try:
            version = Version(importlib.metadata.version(name)).public  # no "+cpu" label
        except importlib.metadata.PackageNotFoundError:
            out.append(name)
        else:
            out.append(f"{name}=={version}")
    return out


def default_code_paths() -> list[str]:
    """The ``tgo`` package folder: the classes a pickled model refers to."""
    import tgo

    return [str(Path(tgo.__file__).resolve().parent)]


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Hide one logger's warnings (MLflow's pickle warning: we choose pickle knowingly)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _on_cpu(model: Any) -> Any:
    """The model itself when it lives on the CPU, else a CPU copy (loads without CUDA)."""
    tensors = [*model.parameters(), *model.buffers()]
    if all(t.device.type == "cpu" for t in tensors):
        return model
    return copy.deepcopy(model).to("cpu")


def log_pytorch_model(client: Any, experiment_id: str, run_id: str, model: Any,
                      config: Mapping[str, Any], *, name: str = "model",
                      params: Mapping[str, str] | None = None,
                      code_paths: Sequence[Any] | None = None,
                      pip_requirements: Sequence[str] | None = None,
                      checkpoint: str | os.PathLike | None = None) -> str:
    """Log ``model`` as an MLflow PyTorch logged model of run ``run_id``.

    What ``mlflow.pytorch.log_model`` does, minus the fluent state: create the logged model
    (source run ``run_id``), save it locally with ``config.json`` beside it, upload, link
    it to the run as an output and mark it READY (FAILED when anything breaks). The run
    also gets ``config.json``.

    Args:
        params: string params of the logged model (the flattened config).
        code_paths: default :func:`default_code_paths`.
        pip_requirements: default :func:`default_pip_requirements`.
        checkpoint: the trial's ``tgo`` checkpoint (tensors and plain data only), copied
            into the model as ``tgo-checkpoint.pt``: ``tgo pick`` rebuilds the network from
            it with ``weights_only=True`` instead of unpickling ``data/model.pth``.

    Returns:
        ``models:/<model id>``; ``runs:/<run_id>/<name>`` resolves to it as well.
    """
    import mlflow.pytorch
    from mlflow.entities import LoggedModelOutput
    from mlflow.models import Model

    code = [str(p) for p in (default_code_paths() if code_paths is None else code_paths)]
    reqs = list(default_pip_requirements() if pip_requirements is None else pip_requirements)
    logged = client.create_logged_model(experiment_id, name=name, source_run_id=run_id,
                                        params=dict(params or {}), model_type="pytorch")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, name)
            info = Model(artifact_path=logged.artifact_location, model_uuid=logged.model_id,
                         run_id=run_id, model_id=logged.model_id)
            with _quiet("mlflow.pytorch"):
                mlflow.pytorch.save_model(_on_cpu(model), str(path), mlflow_model=info,
                                          code_paths=code or None, pip_requirements=reqs,
                                          serialization_format="pickle")
            for cache in list(path.rglob("__pycache__")):
                shutil.rmtree(cache, ignore_errors=True)
            (path / "config.json").write_text(json.dumps(dict(config), indent=2, default=str))
            if checkpoint is not None:
                shutil.copyfile(checkpoint, path / SAFE_CHECKPOINT)
            client.log_model_artifacts(logged.model_id, str(path))
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        client.finalize_logged_model(logged.model_id, "READY")
    except BaseException:
        with contextlib.suppress(Exception):
            client.finalize_logged_model(logged.model_id, "FAILED")
        raise
    client.log_dict(run_id, json.loads(json.dumps(dict(config), default=str)), "config.json")
    return f"models:/{logged.model_id}"
