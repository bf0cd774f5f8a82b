"""Spiking classifiers by name.

Example:
    >>> import torch
    >>> model = build("digits_cnn", num_classes=10, timesteps=4, mean=[0.3], std=[0.4],
    ...               neuron=NeuronSettings(noise_scale=0.2))
    >>> model(torch.rand(2, 1, 8, 8)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from typing import Sequence

import torch

from tgo.config import ModelName, as_enum
from tgo.models.base import NeuronFactory, NeuronSettings, SpikingClassifier
from tgo.models.cifar import vgg11, wrn16
from tgo.models.convnets import digits_cnn, mnist_cnn

__all__ = ["NeuronSettings", "SpikingClassifier", "build", "INPUT_SHAPES"]

_BUILDERS = {
    ModelName.DIGITS_CNN: digits_cnn,
    ModelName.MNIST_CNN: mnist_cnn,
    ModelName.VGG11: vgg11,
    ModelName.WRN16: wrn16,
}

#: The [C, H, W] input each model is built for.
INPUT_SHAPES = {
    ModelName.DIGITS_CNN: (1, 8, 8),
    ModelName.MNIST_CNN: (1, 28, 28),
    ModelName.VGG11: (3, 32, 32),
    ModelName.WRN16: (3, 32, 32),
}


def build(name: ModelName | str, num_classes: int, timesteps: int, mean: Sequence[float],
          std: Sequence[float], neuron: NeuronSettings | None = None,
          generator: torch.Generator | None = None,
          neuron_factory: NeuronFactory | None = None) -> SpikingClassifier:
    """Build model ``name`` with T = ``timesteps``.

    ``neuron`` configures the ``NoisyLIFNode`` layers; ``neuron_factory`` replaces them
    altogether (e.g. spikingjelly's plain ``LIFNode`` as a baseline).
    """
    kind = as_enum(ModelName, name, "model")
    make = neuron_factory or (neuron or NeuronSettings()).factory(generator)
    channels = INPUT_SHAPES[kind][0]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean/std: expected {channels} channel(s) for {kind.value}, "
                         f"got {len(mean)}/{len(std)}")
    return _BUILDERS[kind](num_classes, timesteps, make, mean, std, in_channels=channels)
