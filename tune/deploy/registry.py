"""The MLflow Model Registry side of ``tgo pick``: register the chosen model, load one back.

:func:`register` makes the chosen run's logged model a new version of a registered model,
aliased ``deploy``, tagged with the objectives and the attack that measured them.
:func:`load_model` rebuilds a network from a model URI, weights only.

Example:
    >>> registration = register(result, "digits-snn")                   # doctest: +SKIP
    >>> model = load_model(registration.uri, front.tracking_uri)       # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Mapping

from tune.deploy.choose import PickResult, format_value
from tune.deploy.requirements import METRICS
from tune.tracking import schema

__all__ = ["DEPLOY_ALIAS", "Registration", "load_model", "register"]

DEPLOY_ALIAS = "deploy"


@dataclasses.dataclass(frozen=True)
class Registration:
    """A registered model version and the URI that loads it."""

    name: str
    version: str
    alias: str
    source: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{self.alias}"


def _tag(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:5000]


def register(result: PickResult, name: str, *, alias: str = DEPLOY_ALIAS,
             extra_tags: Mapping[str, Any] | None = None) -> Registration:
    """Register the chosen member's logged model as a new version of ``name``; alias it.

    Tags: the final metrics, the ``eval_*`` description of the attack behind them, the
    objectives, how it was picked and where it came from (sweep, trial, runs).

    Raises:
        ValueError: nothing was chosen, or the chosen member has no logged model.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    member, front = result.chosen, result.front
    if member is None:
        raise ValueError("register: no front member was chosen, nothing to register")
    if member.model_uri is None:
        raise ValueError(f"register: trial {member.trial_id} (run {member.run_id}) has no "
                         f"logged model (tag {schema.MODEL_LOGGED} is not 'true')")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][\w.\-]*", name):
        raise ValueError(f"register: expected a model name of letters, digits, '_', '.', '-', "
                         f"got {name!r}")
    client = MlflowClient(tracking_uri=front.tracking_uri, registry_uri=front.tracking_uri)
    try:
        client.create_registered_model(
            name, description="TGO spiking classifiers picked from sweep Pareto fronts")
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    tags = {**{k: v for k, v in member.metrics.items() if k in METRICS},
            **member.evaluation,
            "objectives": ",".join(o.label for o in front.objectives),
            "picked_by": ("knee" if result.knee is not None else
                          f"{result.objective.direction.value} {result.objective.name}"),
            "requirements": "; ".join(str(r) for r in result.requirements) or "none",
            "sweep": front.name, "experiment": front.experiment,
            "parent_run_id": front.parent_run_id, "trial_id": member.trial_id,
            "run_id": member.run_id, "spec_hash": front.spec_hash or "",
            **dict(extra_tags or {})}
    model_id = member.model_uri.split("/", 1)[1] if member.model_uri.startswith("models:/") \
        else None
    with _global_store(front.tracking_uri):  # the logged model is looked up globally
        version = client.create_model_version(
            name, member.model_uri, run_id=member.run_id,
            tags={k: _tag(v) for k, v in tags.items()}, model_id=model_id,
            description=f"trial {member.trial_id} of sweep {front.name}: "
                        + ", ".join(f"{k} {format_value(member.metrics.get(k))}" for k in METRICS
                                    if k in member.metrics))
    client.set_registered_model_alias(name, alias, version.version)
    return Registration(name, str(version.version), alias, member.model_uri)


@contextlib.contextmanager
def _global_store(tracking_uri: str):
    """MLflow's global tracking URI set to ``tracking_uri`` for the block, then restored.

    A SQL store resolves ``models:/<model id>`` (logged models) through the global URI
    whatever client or ``tracking_uri=`` argument is used (a TODO in MLflow's
    ``sqlalchemy_store.py``); a tracking server resolves it on its side.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry
    from mlflow.tracking._tracking_service import utils as tracking

    # set_*_uri also export MLFLOW_*_URI; put back exactly what was there, env included.
    saved = (tracking._tracking_uri, registry._registry_uri,  # noqa: SLF001
             {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")})
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved[0])
        registry._registry_uri = saved[1]  # noqa: SLF001
        for key, value in saved[2].items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def load_model(model_uri: str, tracking_uri: str, *, allow_pickle: bool = False) -> Any:
    """The network of ``model_uri`` from the store (and registry) at ``tracking_uri``, on
    the CPU; MLflow's global tracking URI is left as it was.

    It is rebuilt from the model's ``tgo-checkpoint.pt`` with ``weights_only=True``: nothing
    in the store can run code here. A model without that file (logged by something else)
    is refused unless ``allow_pickle=True``, which unpickles ``mlflow.pytorch``'s
    ``data/model.pth``: only for a store you trust.
    """
    import mlflow.artifacts

    from tgo.checkpoint import load_model as load_checkpoint
    from tune.tracking.front_models import SAFE_CHECKPOINT

    with tempfile.TemporaryDirectory(prefix="tgo-model-") as tmp, _global_store(tracking_uri):
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp,
                                                    tracking_uri=tracking_uri,
                                                    registry_uri=tracking_uri)
        safe = Path(local) / SAFE_CHECKPOINT
        if safe.is_file():
            try:
                return load_checkpoint(safe)[0]
            except ValueError as exc:   # names the download folder, gone after this block
                raise ValueError(f"model: the {SAFE_CHECKPOINT} of {model_uri} (in "
                                 f"{tracking_uri}) is unusable: {exc}") from None
        if not allow_pickle:
            raise ValueError(f"model: {model_uri} has no {SAFE_CHECKPOINT} (weights only), "
                             "and loading its pickle could run code from the store; load it "
                             "with mlflow.pytorch.load_model only if you trust the store")
        import mlflow.pytorch

        return mlflow.pytorch.load_model(local, map_location="cpu")
