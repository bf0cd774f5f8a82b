"""Checkpoints: plain dicts of tensors and primitives that load with ``weights_only=True``.

Layout (see docs/CONTRACTS.md): ``model`` (state dict), ``config`` (TrainConfig.to_dict()),
``epoch``, ``num_classes``, ``in_shape``, ``mean``, ``std``, and for resuming ``optimizer``,
``scheduler``, ``rng``.

Example:
    >>> model, config = load_model("out/checkpoint.pt")   # doctest: +SKIP
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from tgo.config import TrainConfig
from tgo.models import NeuronSettings, SpikingClassifier, build

__all__ = ["CHECKPOINT_FILE", "build_model", "load", "load_model", "save"]

CHECKPOINT_FILE = "checkpoint.pt"


def build_model(config: TrainConfig, num_classes: int, mean, std,
                generator: torch.Generator | None = None) -> SpikingClassifier:
    """The model a config describes, with freshly initialised weights."""
    neuron = NeuronSettings(tau=config.tau, v_threshold=config.v_threshold,
                            v_reset=config.v_reset, noise_scale=config.noise_scale,
                            surrogate=config.surrogate, noise_at_eval=config.noise_at_eval)
    return build(config.model, num_classes, config.timesteps, mean, std, neuron, generator)


def save(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` atomically (a crash never leaves half a checkpoint)."""
    path = Path(path)
    if path.is_dir() or path.suffix == "":
        path = path / CHECKPOINT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint file (or a folder holding ``checkpoint.pt``) with weights_only=True."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # a pickled object: refused, nothing ran
        found = re.search(r"unsupported global[^\n]*", str(exc), re.I)
        why = found.group(0).rstrip(".") if found else "an object torch refuses to rebuild"
        raise ValueError(f"checkpoint: refused {path}: expected tensors and plain data only "
                         f"(loaded with weights_only=True), got other objects ({why})") from None
    except (RuntimeError, EOFError, KeyError, OSError) as exc:
        raise ValueError(f"checkpoint: expected a checkpoint written by tgo, got {path} "
                         f"({type(exc).__name__}: {str(exc)[:200]})") from None


def load_model(path: str | Path, map_location: str | torch.device = "cpu"
               ) -> tuple[SpikingClassifier, TrainConfig]:
    """Rebuild the trained model of a checkpoint, in eval mode, with its config."""
    state = load(path, map_location)
    missing = [k for k in ("model", "config", "num_classes", "mean", "std")
               if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"checkpoint: expected the keys {missing} in {path}, got "
                         f"{sorted(state) if isinstance(state, dict) else type(state).__name__}")
    config = TrainConfig.from_dict(state["config"])
    model = build_model(config, state["num_classes"], state["mean"], state["std"])
    model.load_state_dict(state["model"])
    return model.eval(), config
