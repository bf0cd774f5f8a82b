"""Switches over every noisy neuron of a model: record H, force noise on or off."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from tgo.neurons.node import NoisyLIFNode

__all__ = ["is_stochastic", "noise", "noisy_nodes", "recording"]


def noisy_nodes(model: nn.Module) -> list[NoisyLIFNode]:
    """Every ``NoisyLIFNode`` of ``model``, in registration order."""
    return [m for m in model.modules() if isinstance(m, NoisyLIFNode)]


@contextlib.contextmanager
def recording(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the pre-spike potentials H of every ``NoisyLIFNode`` during forward passes.

    The list fills in forward order, one [T, B, ...] tensor per layer call, still attached
    to the graph (so a loss on it back-propagates). Outside the block nothing is kept.

    Example:
        >>> with recording(model) as potentials:      # doctest: +SKIP
        ...     logits = model(x)
        >>> loss = threshold_guard_loss(potentials, 1.0, 0.5)  # doctest: +SKIP
    """
    nodes = noisy_nodes(model)
    potentials: list[torch.Tensor] = []
    previous = [n.recorder for n in nodes]
    for n in nodes:
        n.recorder = potentials
    try:
        yield potentials
    finally:
        for n, p in zip(nodes, previous):
            n.recorder = p


@contextlib.contextmanager
def noise(model: nn.Module, enabled: bool) -> Iterator[nn.Module]:
    """Force the membrane noise of every ``NoisyLIFNode`` on or off inside the block."""
    nodes = noisy_nodes(model)
    previous = [n.noise_override for n in nodes]
    for n in nodes:
        n.noise_override = bool(enabled)
    try:
        yield model
    finally:
        for n, p in zip(nodes, previous):
            n.noise_override = p


def is_stochastic(model: nn.Module) -> bool:
    """True when a forward pass of ``model`` in its current mode draws noise."""
    return any(n.noise_active for n in noisy_nodes(model))
