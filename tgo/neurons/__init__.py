"""Noisy spiking neurons (NLIF) and switches to record their potentials or their noise.

Example:
    >>> import torch
    >>> from tgo.neurons import NoisyLIFNode, recording
    >>> layer = torch.nn.Sequential(NoisyLIFNode(noise_scale=0.2))
    >>> with recording(layer) as potentials:
    ...     spikes = layer(torch.rand(4, 3, 8))
    >>> potentials[0].shape
    torch.Size([4, 3, 8])
"""

from tgo.neurons.control import is_stochastic, noise, noisy_nodes, recording
from tgo.neurons.functional import LIFParams, noisy_lif_multi_step
from tgo.neurons.node import NoisyLIFNode
from tgo.neurons.surrogates import surrogate_gradient

__all__ = [
    "LIFParams",
    "NoisyLIFNode",
    "is_stochastic",
    "noise",
    "noisy_lif_multi_step",
    "noisy_nodes",
    "recording",
    "surrogate_gradient",
]
