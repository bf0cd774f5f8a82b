"""The attacker's surrogate gradient: attack with a surrogate other than training's.

A spiking network's input gradient goes through a surrogate of the spike's derivative.
A defence can look robust only because its training surrogate gives poor gradients; an
adaptive attacker picks its own. :func:`attacker_surrogate` swaps the surrogate of every
:class:`~tgo.neurons.NoisyLIFNode` for the duration of a block and then puts back each
node's exact previous parameters. The forward pass (spikes, noise) is unchanged; only
gradients differ.

Example:
    >>> with attacker_surrogate(model, "atan"):  # doctest: +SKIP
    ...     x_adv = pgd(model, x, y, eps=0.1)
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn

from tgo.config import Surrogate, as_enum
from tgo.neurons import noisy_nodes

__all__ = ["attacker_surrogate"]


@contextlib.contextmanager
def attacker_surrogate(model: nn.Module, name: Surrogate | str,
                       alpha: float | None = None) -> Iterator[nn.Module]:
    """Run a block with every NoisyLIFNode of ``model`` using surrogate ``name``.

    Args:
        model: a network with :class:`~tgo.neurons.NoisyLIFNode` neurons.
        name: ``sigmoid`` | ``atan`` | ``triangle`` | ``erf``.
        alpha: the surrogate's sharpness; None takes the default for ``name`` (``erf``:
            std sqrt(sigma^2 + S0^2) of each node's sigma; 1 / (sigma sqrt 2) gives the
            exact density of the noise alone).

    Raises:
        ValueError: unknown ``name``, bad ``alpha``, or no NoisyLIFNode in ``model``.

    Example:
        >>> with attacker_surrogate(model, "triangle", alpha=1.0) as m:  # doctest: +SKIP
        ...     grad = eot_gradient(m, x, y)
    """
    kind = as_enum(Surrogate, name, "surrogate")
    nodes = noisy_nodes(model)
    if not nodes:
        raise ValueError(f"model: expected NoisyLIFNode neurons to swap the surrogate of, "
                         f"got none in a {type(model).__name__}")
    saved = [(node, node.params) for node in nodes]
    try:
        for node in nodes:
            node.set_surrogate(kind, alpha)
        yield model
    finally:
        for node, params in saved:
            node.params = params
