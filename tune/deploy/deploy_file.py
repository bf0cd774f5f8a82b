"""``deploy.yaml``, the file ``tgo pick`` writes: the chosen model, its full config, its
metrics, the attack behind them and where it came from; :func:`read_deploy` reads it back.

Example:
    >>> doc = read_deploy("deploy.yaml")                                  # doctest: +SKIP
    >>> doc["config"].timesteps                                           # doctest: +SKIP
    4
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from tgo.config import TrainConfig
from tune.deploy.choose import PickResult, explain_knee
from tune.deploy.knee import KNEE_RULE
from tune.deploy.registry import Registration
from tune.deploy.requirements import METRICS
from tune.tracking.reader import SweepFront, TrialRun

__all__ = ["deploy_document", "member_config", "read_deploy"]


def member_config(front: SweepFront, member: TrialRun) -> TrainConfig:
    """The member's full TrainConfig: its params, else the ``config.json`` logged beside
    its model.

    Raises:
        ValueError: neither holds every TrainConfig field.
    """
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    config = {k: member.params[k] for k in fields if k in member.params}
    if len(config) < len(fields):
        from mlflow import MlflowClient

        with tempfile.TemporaryDirectory() as tmp, contextlib.suppress(Exception):
            path = MlflowClient(front.tracking_uri).download_artifacts(member.run_id,
                                                                       "config.json", tmp)
            config = {**json.loads(Path(path).read_text()), **config}
    missing = [k for k in fields if k not in config]
    if missing:
        raise ValueError(f"run {member.run_id}: expected the full TrainConfig in its params or "
                         f"config.json, missing {', '.join(missing)}")
    return TrainConfig.from_dict({k: config[k] for k in fields})


#: Keys :func:`read_deploy` requires in ``deploy.yaml`` (what :func:`deploy_document` writes).
_DEPLOY_KEYS = ("model_uri", "config", "sweep")


def read_deploy(path: str | os.PathLike) -> dict[str, Any]:
    """Read back the ``deploy.yaml`` that ``tgo pick`` wrote, checked.

    Returns the document with ``config`` as a :class:`TrainConfig`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not such a document (not UTF-8 YAML, cut short, foreign,
            or a key missing or of the wrong type); the message names the file.

    Example:
        >>> doc = read_deploy("deploy.yaml")                                  # doctest: +SKIP
        >>> model = load_model(doc["model_uri"], doc["sweep"]["tracking_uri"])  # doctest: +SKIP
    """
    import yaml

    path = Path(path)
    expected = (f"deploy: expected the YAML mapping that tgo pick writes (keys "
                f"{', '.join(_DEPLOY_KEYS)}, ...)")
    if not path.is_file():
        raise FileNotFoundError(f"deploy: no file at {path}")
    try:
        doc = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0][:200]
        raise ValueError(f"{expected}, got {path} (not UTF-8 YAML: {what})") from None
    if not isinstance(doc, dict):
        got = "an empty file" if doc is None else f"a YAML {type(doc).__name__}"
        raise ValueError(f"{expected}, got {path} ({got})")
    missing = [k for k in _DEPLOY_KEYS if k not in doc]
    if missing:
        raise ValueError(f"{expected}, got {path} (missing {', '.join(missing)}; cut short?)")
    sweep = doc["sweep"]
    if not isinstance(doc["model_uri"], str) or not isinstance(sweep, dict) \
            or not isinstance(sweep.get("tracking_uri"), str) \
            or not isinstance(doc["config"], dict):
        raise ValueError(f"{expected}, got {path} (model_uri, sweep.tracking_uri: text; "
                         "config: a mapping)")
    try:
        config = TrainConfig.from_dict(doc["config"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"deploy: expected a TrainConfig under config in {path}, got "
                         f"{exc}") from None
    return {**doc, "config": config}


def _picked_by(result: PickResult) -> dict[str, Any]:
    """How the member was chosen: an objective and direction, or the knee and why."""
    require = [str(r) for r in result.requirements]
    if result.knee is None:
        return {"objective": result.objective.name,
                "direction": result.objective.direction.value, "require": require}
    chosen = result.chosen
    return {"rule": "knee", "require": require, "definition": KNEE_RULE,
            "knee_distance": result.knee[chosen.run_id],
            "distances": {m.trial_id: result.knee[m.run_id] for m in result.feasible
                          if m.run_id in result.knee},
            "explanation": explain_knee(result)}


def deploy_document(result: PickResult, config: TrainConfig, *,
                    registration: Registration | None = None,
                    check: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``deploy.yaml``: model URI, config, metrics, attack, provenance."""
    member, front = result.chosen, result.front
    if member is None:
        raise ValueError("deploy: no front member was chosen")
    model_uri = registration.uri if registration else member.model_uri
    doc: dict[str, Any] = {
        "model_uri": model_uri,
        "registered": None if registration is None else {
            "name": registration.name, "version": registration.version,
            "alias": registration.alias, "source": registration.source},
        "metrics": {k: member.metrics.get(k) for k in METRICS if k in member.metrics},
        "evaluation": dict(member.evaluation),
        "check": dict(check) if check else None,
        "picked_by": _picked_by(result),
        "sweep": {"name": front.name, "experiment": front.experiment,
                  "tracking_uri": front.tracking_uri, "parent_run_id": front.parent_run_id,
                  "spec_hash": front.spec_hash,
                  "objectives": {o.name: o.direction.value for o in front.objectives}},
        "trial": {"trial_id": member.trial_id, "run_id": member.run_id,
                  "logged_model": member.model_uri},
        "config": config.to_dict(),
    }
    return json.loads(json.dumps(doc, default=str))  # plain types only, for safe_dump
