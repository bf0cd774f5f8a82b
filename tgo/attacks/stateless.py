"""Model wrappers that keep attacks honest about a spiking network's hidden state.

A spikingjelly network keeps its membrane potentials between calls until
:func:`spikingjelly.activation_based.functional.reset_net` clears them. An attack calls the
model many times; without a reset each inner forward starts from the state the previous
one left, and the gradients and the final verdict are silently wrong (seen with
torchattacks). :class:`Stateless` resets before (and after) every forward, so any model,
whether or not it resets itself, can be attacked.

:func:`eval_mode` puts a model in eval mode for the duration of a block and then restores
every submodule's own ``training`` flag, so an attack or an evaluation never leaves a
trace on the model it was handed.

Example:
    >>> from spikingjelly.activation_based import layer, neuron
    >>> net = Stateless(torch.nn.Sequential(layer.Linear(3, 2), neuron.LIFNode()))
    >>> x = torch.ones(1, 3)
    >>> torch.equal(net(x), net(x))
    True
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from spikingjelly.activation_based import functional
from torch import nn

__all__ = ["Stateless", "as_stateless", "eval_mode"]


class Stateless(nn.Module):
    """Wrap ``model`` so that every forward starts (and ends) with freshly reset neurons.

    The wrapped model is a registered submodule: ``.to()``, ``.eval()`` and parameters pass
    through. Resetting after the forward as well drops the membrane tensors (and the graph
    they hold) as soon as the call returns.

    Args:
        model: any ``nn.Module``; modules without state are unaffected by the reset.

    Example:
        >>> logits = Stateless(model)(x)  # doctest: +SKIP
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        functional.reset_net(self.model)
        try:
            return self.model(x)
        finally:
            functional.reset_net(self.model)


def as_stateless(model: nn.Module) -> Stateless:
    """Return ``model`` wrapped in :class:`Stateless` (itself when it already is one)."""
    return model if isinstance(model, Stateless) else Stateless(model)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block with ``model`` in eval mode and restore each submodule's mode afterwards.

    Example:
        >>> model = torch.nn.Dropout().train()
        >>> with eval_mode(model):
        ...     model.training
        False
        >>> model.training
        True
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
