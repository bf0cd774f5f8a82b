"""Training of TGO spiking networks: ``fit(config, report) -> FitResult``.

One loop covers every regime of the paper: plain BPTT (margin_weight = 0, noise_scale = 0),
TGO (guard loss and/or noisy neurons) and adversarial training (FGSM or PGD-k examples at
``eps_train``), with or without TGO. ``fit`` knows nothing of the tuner: it calls
``report(metrics, state)`` once per epoch, and ``state.save(folder)`` writes a checkpoint.

Example:
    >>> result = fit(TrainConfig(epochs=2))                # doctest: +SKIP
    >>> result.history[-1]["val_clean_acc"]                # doctest: +SKIP
    0.93
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from tgo import allocator, checkpoint, data
from tgo.attacks import make_attack
from tgo.errors import TgoError
from tgo.config import Optimizer, Regime, TrainConfig
from tgo.diagnostics import firing_rate, near_threshold_fraction
from tgo.energy import synaptic_operations
from tgo.evaluate import robustness
from tgo.losses import LambdaSchedule, threshold_guard_loss
from tgo.models import SpikingClassifier
from tgo.neurons import recording

__all__ = ["FitResult", "accuracy", "TrainState", "TrainingDiverged", "fit", "load_resume_state",
           "resolve_device"]


class TrainingDiverged(TgoError, FloatingPointError):
    """The loss became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: expected an available device, got {name!r} (no CUDA here)")
    return torch.device(name)


@dataclasses.dataclass
class TrainState:
    """Everything needed to resume training after ``epoch`` (1-based, completed)."""

    config: TrainConfig
    splits: data.DataSplits
    model: SpikingClassifier
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    noise_rng: torch.Generator
    loader_rng: torch.Generator
    epoch: int = 0

    def payload(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "num_classes": self.splits.num_classes,
            "in_shape": list(self.splits.in_shape),
            "mean": list(self.splits.mean),
            "std": list(self.splits.std),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "noise": self.noise_rng.get_state(),
                    "loader": self.loader_rng.get_state()},
        }

    def save(self, folder: str | Path) -> Path:
        """Write ``checkpoint.pt`` into ``folder``; returns its path."""
        return checkpoint.save(Path(folder) / checkpoint.CHECKPOINT_FILE, self.payload())

    def restore(self, payload: dict[str, Any]) -> None:
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        torch.set_rng_state(payload["rng"]["torch"])
        self.noise_rng.set_state(payload["rng"]["noise"])
        self.loader_rng.set_state(payload["rng"]["loader"])
        self.epoch = int(payload["epoch"])


Reporter = Callable[[dict[str, float], TrainState], Any]


@dataclasses.dataclass
class FitResult:
    """The trained model, its data splits and one metrics dict per epoch."""

    config: TrainConfig
    model: SpikingClassifier
    splits: data.DataSplits
    history: list[dict[str, float]]
    state: TrainState


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _setup(config: TrainConfig) -> TrainState:
    _seed_everything(config.seed)
    device = resolve_device(config.device)
    if device.type == "cpu":
        allocator.keep_freed_memory()   # no page faults for the same tensors every step
    splits = data.load(config.dataset, seed=config.seed, data_dir=config.data_dir,
                       download=config.download, val_fraction=config.val_fraction,
                       test_fraction=config.test_fraction)
    noise_rng = torch.Generator(device=device).manual_seed(config.seed + 1)
    loader_rng = torch.Generator().manual_seed(config.seed + 2)
    model = checkpoint.build_model(config, splits.num_classes, splits.mean, splits.std,
                                   generator=noise_rng).to(device)
    if config.optimizer is Optimizer.SGD:
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                    weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr,
                                     weight_decay=config.weight_decay)
    steps = config.epochs * math.ceil(len(splits.train) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    return TrainState(config, splits, model, optimizer, scheduler, noise_rng, loader_rng)


def _autocast(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _train_epoch(state: TrainState, schedule: LambdaSchedule, device: torch.device,
                 show_progress: bool) -> dict[str, float]:
    cfg, model = state.config, state.model
    loader = DataLoader(state.splits.train, batch_size=cfg.batch_size, shuffle=True,
                        generator=state.loader_rng, num_workers=cfg.num_workers,
                        drop_last=len(state.splits.train) > cfg.batch_size)
    # eps_train 0 is clean training (a PGD of radius 0 returns x): no attack runs, so a
    # sweep can search eps_train over [0, ...] and compare standard with adversarial.
    adversary = (make_attack(cfg.attack_train, eps=cfg.eps_train, steps=cfg.pgd_steps_train)
                 if cfg.regime is Regime.ADVERSARIAL and cfg.eps_train > 0 else None)
    totals = {"train_loss": 0.0, "task_loss": 0.0, "guard_loss": 0.0}
    seen = 0
    batches = loader
    if show_progress:
        from tqdm.auto import tqdm
        batches = tqdm(loader, desc=f"epoch {state.epoch + 1}/{cfg.epochs}", leave=False)
    lam = 0.0
    for i, (x, y) in enumerate(batches):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if adversary is not None:
            x = adversary.run(model, x, y, generator=state.noise_rng)
        model.train()
        lam = schedule((state.epoch + i / len(loader)) / cfg.epochs)
        with _autocast(device, cfg.amp), recording(model) as potentials:
            logits = model(x)
            task = F.cross_entropy(logits.float(), y)
        guard = threshold_guard_loss(potentials if lam > 0 else [h.detach() for h in potentials],
                                     cfg.v_threshold, cfg.margin, cfg.squared_hinge)
        loss = task + lam * guard
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"loss became {loss.item()} at epoch {state.epoch + 1}, "
                                   f"batch {i} (task {task.item():.4g}, guard {guard.item():.4g})")
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        state.scheduler.step()
        n = len(y)
        seen += n
        totals["train_loss"] += loss.item() * n
        totals["task_loss"] += task.item() * n
        totals["guard_loss"] += guard.item() * n
    out = {k: v / max(seen, 1) for k, v in totals.items()}
    out["lambda"] = lam
    return out


def validate(state: TrainState) -> dict[str, float]:
    """Clean accuracy on the validation split, and on a fixed subset of it: the cheap
    attack, the firing rate, the near-threshold fraction and the synaptic operations per
    inference (model in eval mode)."""
    cfg, model = state.config, state.model
    device = next(model.parameters()).device
    subset = torch.utils.data.Subset(state.splits.val,
                                     range(min(cfg.val_subset, len(state.splits.val))))
    x_sub = torch.stack([subset[i][0] for i in range(len(subset))]).to(device)
    stochastic = cfg.noise_scale > 0 and cfg.noise_at_eval
    was_training = model.training
    model.eval()
    try:
        clean = accuracy(model, state.splits.val, device)
        attacked = robustness(model, subset, attack=cfg.val_attack, eps=cfg.val_eps,
                              steps=cfg.val_steps,
                              eot_samples=cfg.val_eot_samples if stochastic else 1,
                              batch_size=512, device=device, generator=state.noise_rng)
        with torch.no_grad(), recording(model) as potentials:
            rate = firing_rate(model, x_sub)
        sops = synaptic_operations(model, x_sub).sops
    finally:
        model.train(was_training)
    near = near_threshold_fraction(potentials, cfg.v_threshold, cfg.margin)
    return {"val_clean_acc": clean, "val_robust_acc": attacked.robust_acc,
            "val_spike_rate": rate, "val_near_threshold": near, "val_sops": sops}


@torch.no_grad()
def accuracy(model: SpikingClassifier, dataset, device: torch.device,
             batch_size: int = 512) -> float:
    """Clean accuracy in eval mode (one stochastic forward per example if noise is on)."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for x, y in DataLoader(dataset, batch_size=batch_size):
        pred = model(x.to(device)).argmax(1).cpu()
        correct += int((pred == y).sum())
        total += len(y)
    model.train(was_training)
    return correct / max(total, 1)


#: What :meth:`TrainState.save` writes and :func:`fit` needs to resume.
RESUME_KEYS = ("model", "optimizer", "scheduler", "rng", "config", "epoch")


def load_resume_state(path: str | Path, map_location: str | torch.device = "cpu"
                      ) -> dict[str, Any]:
    """The payload of a checkpoint that :func:`fit` can resume from.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is foreign, cut short, damaged, or lacks a resumable state
            (the message names the file and what was expected).
    """
    payload = checkpoint.load(path, map_location=map_location)
    missing = [k for k in RESUME_KEYS if k not in payload]
    rng = payload.get("rng")
    if not missing and not (isinstance(rng, dict) and {"torch", "noise", "loader"} <= set(rng)):
        missing = ["rng.torch/noise/loader"]
    if not missing and not isinstance(payload["config"], dict):
        missing = ["config (a dict)"]
    if missing:
        raise ValueError(f"resume_from: expected a training state written by tgo in {path} "
                         f"(keys {list(RESUME_KEYS)}), missing {missing}")
    return payload


def fit(config: TrainConfig, report: Reporter | None = None, *,
        resume_from: str | Path | None = None, show_progress: bool = False) -> FitResult:
    """Train ``config``'s model on ``config``'s data.

    Args:
        config: the run's settings.
        report: called after every epoch with the metrics (``epoch``, ``train_loss``,
            ``task_loss``, ``guard_loss``, ``lambda``, ``val_clean_acc``,
            ``val_robust_acc``, ``val_spike_rate``, ``val_near_threshold``, ``val_sops``) and the
            :class:`TrainState` (``state.save(folder)`` writes a checkpoint).
        resume_from: a checkpoint (file or folder) to continue from; its config must equal
            ``config`` up to ``epochs``.
        show_progress: a tqdm bar per epoch.

    Raises:
        TrainingDiverged: the loss became NaN or infinite.
    """
    state = _setup(config)
    device = next(state.model.parameters()).device
    if resume_from is not None:
        payload = load_resume_state(resume_from, map_location=device)
        saved = TrainConfig.from_dict(payload["config"])
        if saved.replace(epochs=config.epochs) != config:
            raise ValueError(f"resume_from: the checkpoint at {resume_from} was trained with a "
                             "different config")
        try:
            state.restore(payload)
        except (RuntimeError, ValueError, TypeError, KeyError) as exc:
            why = " ".join(str(exc).split())[:300]
            raise ValueError(f"resume_from: expected the training state of this config in "
                             f"{resume_from}, got {type(exc).__name__}: {why}") from None
    schedule = LambdaSchedule(config.margin_weight, config.ramp_fraction, config.lambda_schedule)
    history: list[dict[str, float]] = []
    while state.epoch < config.epochs:
        metrics = _train_epoch(state, schedule, device, show_progress)
        state.epoch += 1
        metrics = {"epoch": state.epoch, **metrics, **validate(state)}
        history.append(metrics)
        if report is not None:
            report(metrics, state)
    state.model.eval()
    return FitResult(config, state.model, state.splits, history, state)
