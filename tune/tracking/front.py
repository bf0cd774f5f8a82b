"""The Pareto front of a sweep in MLflow: read the finished trials, rewrite the front.

:class:`FrontLogging` is the part of :class:`tune.tracking.SweepTracker` that keeps the
front: the parent's ``pareto.*`` artifacts and ``hypervolume`` metric, the children's
``pareto`` / ``pareto_rank`` tags and the models of front members (see
:mod:`tune.tracking.front_models`). It relies on the tracker's plumbing.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from tune.pareto import Objective, hypervolume, pareto_ranks
from tune.tracking import front_models, reader, schema
from tune.tracking.schema import MAX_PARAM_VALUE, flatten, key, text

__all__ = ["FrontLogging", "as_objectives"]


def as_objectives(objectives: Sequence[Any], field: str) -> tuple[Objective, ...]:
    """:class:`Objective` from objectives, ``(name, direction)`` pairs or mappings."""
    out = []
    for obj in objectives or ():
        if isinstance(obj, Objective):
            out.append(obj)
        elif isinstance(obj, Mapping):
            out.append(Objective(**obj))
        elif isinstance(obj, (tuple, list)) and len(obj) == 2:
            out.append(Objective(*obj))
        else:
            raise ValueError(f"{field}: expected Objective, (name, direction) or mapping, "
                             f"got {obj!r}")
    if not out:
        raise ValueError(f"{field}: expected at least one objective, got {objectives!r}")
    return tuple(out)


class FrontLogging:
    """The front of :class:`tune.tracking.SweepTracker` (a mixin of it)."""

    def finished_records(self) -> list[dict[str, Any]]:
        """Records of this sweep's FINISHED children, read back from the store.

        Each has ``trial_id``, ``run_id``, ``params`` (values parsed back from text), one key
        per objective (None when missing), the ``eval_*`` tags, ``checkpoint`` and
        ``model_logged``. Reading the store, not memory, keeps a resumed sweep's front whole.
        """
        parent = self._require_parent()
        with self.guard("read the finished trials"):
            trials = [reader.read_trial(run) for run in
                      reader.child_runs(self.client, self._experiment_id, parent,
                                        status="FINISHED")
                      if schema.ORPHAN not in run.data.tags]   # not in the sweep's results
        for trial in trials:
            if trial.front_tags is not None:
                self._front_tags[trial.run_id] = trial.front_tags
        return [trial.record(self.objectives) for trial in trials]

    def update_front(self, records: Sequence[Mapping[str, Any]],
                     objectives: Sequence[Any] | None = None) -> list[Mapping[str, Any]]:
        """Rewrite the parent's front artifacts, hypervolume and the children's pareto tags.

        Args:
            records: FINISHED trials only, each with ``trial_id``, ``run_id``, ``params``,
                the objective values and optionally the ``eval_*`` attack description
                (as :meth:`finished_records` returns them).
            objectives: defaults to the tracker's.

        Returns:
            The records on the Pareto front (rank 0), in input order.

        Writes ``pareto.csv``, ``pareto.json``, ``pareto.png`` and ``pareto.html`` on the
        parent, metric ``hypervolume`` at step ``len(records)``, and on every child tags
        ``pareto`` (``true``/``false``) and ``pareto_rank`` (0 = front).
        """
        from mlflow.entities import Metric, RunTag

        parent = self._require_parent()
        objs = self.objectives if objectives is None else as_objectives(objectives, "objectives")
        for i, record in enumerate(records):
            if not {"trial_id", "run_id"} <= set(record):
                raise ValueError(f"records[{i}]: expected keys 'trial_id' and 'run_id', got "
                                 f"{sorted(record)}")
        ranks = pareto_ranks(records, objs)
        volume = hypervolume(records, objs)
        meta = {"sweep_name": self.sweep_name, "spec_hash": self.spec_hash,
                "parent_run_id": parent}
        with self.guard("update the Pareto front"):
            with tempfile.TemporaryDirectory() as folder:
                front_models.write_front_files(Path(folder), records, ranks, objs, volume, meta)
                self.client.log_artifacts(parent, folder)
            self._log_batch(parent, metrics=[Metric(schema.HYPERVOLUME, volume,
                                                    int(time.time() * 1000), len(records))])
            for record, rank in zip(records, ranks):
                want = ("true" if rank == 0 else "false", str(rank))
                if self._front_tags.get(record["run_id"]) != want:
                    self._log_batch(record["run_id"], tags=[RunTag(schema.PARETO, want[0]),
                                                            RunTag(schema.PARETO_RANK, want[1])])
                    self._front_tags[record["run_id"]] = want
        return [record for record, rank in zip(records, ranks) if rank == 0]

    def log_front_model(self, run_id: str, model: Any, config_dict: Mapping[str, Any],
                        checkpoint: str | os.PathLike | None = None) -> str:
        """Log a front member's model on its child run, once (tag ``tgo.model_logged``).

        The model is an MLflow PyTorch model named ``model`` (pickle serialization, explicit
        pip requirements, the ``tgo`` package as code), with ``config.json`` beside it and
        on the run. Load it with ``mlflow.pytorch.load_model(f"runs:/{run_id}/model")``.

        Returns:
            The model URI (``models:/<model id>``), also when it was logged before.
        """
        from mlflow.entities import RunTag

        self._require_parent()
        with self.guard(f"log the model of run {run_id}"):
            run = self.client.get_run(run_id)
            if run.data.tags.get(schema.MODEL_LOGGED) == "true":
                return run.data.tags.get(schema.MODEL_URI, f"runs:/{run_id}/model")
            params = {key(k): text(v, MAX_PARAM_VALUE) for k, v in flatten(config_dict).items()}
            uri = front_models.log_pytorch_model(
                self.client, run.info.experiment_id, run_id, model, dict(config_dict),
                params=params, code_paths=self.model_code_paths,
                pip_requirements=self.model_pip_requirements, checkpoint=checkpoint)
            self._log_batch(run_id, tags=[RunTag(schema.MODEL_LOGGED, "true"),
                                          RunTag(schema.MODEL_URI, uri)])
        return uri
