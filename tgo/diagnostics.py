"""Measurements of a spiking network's inner state: how close to threshold, how active,
how easily an input flips its spikes, how steep its input gradient.

Every function evaluates in eval mode (restoring each submodule's mode afterwards), resets
the neurons around each forward, and runs under ``torch.no_grad`` except
:func:`input_grad_norm`, which needs the gradient. Spikes are read with forward hooks on
spikingjelly's ``BaseNode`` modules (whose output is the spike tensor), so plain
``LIFNode`` models work as well as :class:`~tgo.neurons.NoisyLIFNode` ones.

Example:
    >>> from tgo.neurons import recording
    >>> with recording(model) as potentials:  # doctest: +SKIP
    ...     model(x)
    >>> near_threshold_fraction(potentials, v_threshold=1.0, margin=0.5)  # doctest: +SKIP
    0.23
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from spikingjelly.activation_based.neuron import BaseNode, SimpleBaseNode
from torch import nn

from tgo.attacks.gradient import eot_gradient
from tgo.attacks.stateless import as_stateless, eval_mode
from tgo.neurons import noise

__all__ = ["firing_rate", "input_grad_norm", "near_threshold_fraction", "state_flip_rate"]

_SPIKING = (BaseNode, SimpleBaseNode)


def near_threshold_fraction(potentials: torch.Tensor | Sequence[torch.Tensor],
                            v_threshold: float, margin: float) -> float:
    """Share of recorded neuron-steps with ``|H - V_th| < margin``.

    Args:
        potentials: pre-spike potentials H, one tensor or a list (e.g. from
            :func:`tgo.neurons.recording`, one [T, B, ...] tensor per layer); every element
            counts once.
        v_threshold: the firing threshold V_th.
        margin: half-width delta of the band around V_th (> 0, units of V_th).

    Example:
        >>> near_threshold_fraction([torch.tensor([0.0, 0.9, 1.2, 2.0])], 1.0, 0.5)
        0.5
    """
    if isinstance(potentials, torch.Tensor):
        potentials = [potentials]
    if not potentials:
        raise ValueError("potentials: expected at least one tensor, got an empty list")
    if not margin > 0:
        raise ValueError(f"margin: expected a number > 0, got {margin!r}")
    near = total = 0
    with torch.no_grad():
        for h in potentials:
            near += int(((h.detach() - v_threshold).abs() < margin).sum())
            total += h.numel()
    if total == 0:
        raise ValueError("potentials: expected at least one recorded value, got none")
    return near / total


@contextlib.contextmanager
def _spike_hooks(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    nodes = [m for m in model.modules() if isinstance(m, _SPIKING)]
    if not nodes:
        raise ValueError(f"model: expected spiking neurons (spikingjelly BaseNode modules), "
                         f"got none in {type(model).__name__}")
    spikes: list[torch.Tensor] = []
    handles = [n.register_forward_hook(lambda _m, _i, out: spikes.append(out.detach()))
               for n in nodes]
    try:
        yield spikes
    finally:
        for h in handles:
            h.remove()


def _record_spikes(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with eval_mode(model), torch.no_grad(), _spike_hooks(model) as spikes:
        as_stateless(model)(x)
    return spikes


def firing_rate(model: nn.Module, x: torch.Tensor) -> float:
    """Mean spike rate: spikes per neuron per time step over all spiking layers, in [0, 1].

    Pooled over every neuron-step of every layer (so large layers weigh more), for one
    forward of ``x`` with the model's own noise state.

    Example:
        >>> firing_rate(model, x)  # doctest: +SKIP
        0.12
    """
    spikes = _record_spikes(model, x)
    return sum(float(s.float().sum()) for s in spikes) / sum(s.numel() for s in spikes)


def state_flip_rate(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor,
                    *, seed: int = 0) -> float:
    """Share of neuron-steps whose spike differs between inputs ``x`` and ``x_adv``.

    The membrane noise is switched off for both passes (:func:`tgo.neurons.noise`), so the
    rate measures the effect of the input change and not of fresh noise draws; any other
    randomness sees the same ``seed`` in both passes. Identical inputs give exactly 0.

    Example:
        >>> state_flip_rate(model, x, pgd(model, x, y, eps=0.1))  # doctest: +SKIP
        0.04
    """
    if x.shape != x_adv.shape:
        raise ValueError(f"x_adv: expected the shape of x {tuple(x.shape)}, "
                         f"got {tuple(x_adv.shape)}")
    devices = [x.device] if x.device.type == "cuda" else []
    runs = []
    with noise(model, False):
        for inputs in (x, x_adv):
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                runs.append(_record_spikes(model, inputs))
    flips = sum(int((a != b).sum()) for a, b in zip(*runs))
    return flips / sum(s.numel() for s in runs[0])


def input_grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    *, eot_samples: int = 1) -> float:
    """Mean over examples of ``||d CE(model(x_i), y_i) / d x_i||_2``.

    The attacker's view of the network's steepness (TGO bounds attack strength by the
    input Jacobian). Uses the model's own noise state; ``eot_samples`` averages the
    gradient over noise draws first. Parameter ``.grad`` is not touched.

    Example:
        >>> input_grad_norm(model, x, y)  # doctest: +SKIP
        0.87
    """
    grad = eot_gradient(model, x, y, eot_samples=eot_samples)
    return float(grad.flatten(1).norm(dim=1).mean())
