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
import warnings
import zipfile
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
    """Read a checkpoint file (or a folder holding ``checkpoint.pt``) with weights_only=True.

    Raises:
        FileNotFoundError: there is no such file.
        ValueError: the file is not a checkpoint written by tgo: empty, foreign (text, a
            pickle of objects), cut short (a crash mid-write), damaged, or not a dict. The
            message names the file and what it holds.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {path}")
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol is no news here
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"unsupported global[^\n]*", str(exc), re.I)
        if found is None:   # bad pickle opcodes: garbage, not objects
            raise ValueError(f"{_EXPECTED}, got {path} ({_what_is(path, exc)})") from None
        raise ValueError(f"checkpoint: refused {path}: expected tensors and plain data only "
                         f"(loaded with weights_only=True), got other objects "
                         f"({found.group(0).rstrip('.')})") from None
    except OSError as exc:
        raise ValueError(f"checkpoint: expected a readable file, got {path} "
                         f"({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - on garbage torch's loader raises IndexError,
        # RuntimeError, EOFError, ValueError, KeyError, struct.error, UnicodeDecodeError, ...
        raise ValueError(f"{_EXPECTED}, got {path} ({_what_is(path, exc)})") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{_EXPECTED}, got {path} (a {type(payload).__name__})")
    return payload


_EXPECTED = "checkpoint: expected a checkpoint written by tgo (torch.save of a dict)"
_ZIP_MAGIC = b"PK\x03\x04"


def _what_is(path: Path, exc: BaseException) -> str:
    """What ``path`` holds, for an error message, judged from its bytes."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as file:
            head = file.read(4)
    except OSError as err:
        return f"unreadable: {err.strerror or err}"
    if size == 0:
        return "an empty file"
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                damaged = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError):
            return f"a zip archive cut short or damaged, {size} bytes: a crash mid-write " \
                   "leaves one"
        if damaged is not None:
            return f"a damaged zip archive (bad CRC in {damaged})"
        reason = " ".join(str(exc).split())[:200]
        return f"a zip archive torch cannot read: {type(exc).__name__}" + \
            (f": {reason}" if reason else "")
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return f"a pickle cut short or damaged, {size} bytes"
    return "not a zip/pickle file"


def load_model(path: str | Path, map_location: str | torch.device = "cpu"
               ) -> tuple[SpikingClassifier, TrainConfig]:
    """Rebuild the trained model of a checkpoint, in eval mode, with its config."""
    state = load(path, map_location)
    missing = [k for k in ("model", "config", "num_classes", "mean", "std") if k not in state]
    if missing:
        raise ValueError(f"checkpoint: expected the keys {missing} in {path}, got "
                         f"{sorted(map(str, state))[:20]}")
    try:
        config = TrainConfig.from_dict(state["config"])
        model = build_model(config, state["num_classes"], state["mean"], state["std"])
        model.load_state_dict(state["model"])
    except Exception as exc:  # noqa: BLE001 - a foreign dict: wrong types, shapes, keys
        why = " ".join(str(exc).split())[:300]
        raise ValueError(f"checkpoint: expected a config and model weights written by tgo in "
                         f"{path}, got {type(exc).__name__}: {why}") from None
    return model.eval(), config
