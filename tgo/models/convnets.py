"""Small spiking CNNs for 8x8 digits and 28x28 MNIST-like images."""

from __future__ import annotations

from torch import nn

from tgo.models.base import NeuronFactory, SpikingClassifier, conv_bn, seq

__all__ = ["digits_cnn", "mnist_cnn"]


def digits_cnn(num_classes: int, timesteps: int, make_neuron: NeuronFactory,
               mean, std, in_channels: int = 1) -> SpikingClassifier:
    """conv32 - conv64 - pool - fc128 - fc, for 8x8 inputs (scikit-learn digits)."""
    stem = nn.Sequential(*conv_bn(in_channels, 32))
    body = nn.Sequential(
        make_neuron(),
        seq(*conv_bn(32, 64)), make_neuron(), seq(nn.MaxPool2d(2)),
        seq(nn.Flatten(), nn.Linear(64 * 4 * 4, 128)), make_neuron(),
    )
    return SpikingClassifier(stem, body, seq(nn.Linear(128, num_classes)), timesteps, mean, std)


def mnist_cnn(num_classes: int, timesteps: int, make_neuron: NeuronFactory,
              mean, std, in_channels: int = 1) -> SpikingClassifier:
    """conv32 - conv32 - pool - conv64 - pool - fc256 - fc, for 28x28 inputs."""
    stem = nn.Sequential(*conv_bn(in_channels, 32))
    body = nn.Sequential(
        make_neuron(),
        seq(*conv_bn(32, 32)), make_neuron(), seq(nn.MaxPool2d(2)),
        seq(*conv_bn(32, 64)), make_neuron(), seq(nn.MaxPool2d(2)),
        seq(nn.Flatten(), nn.Linear(64 * 7 * 7, 256)), make_neuron(),
    )
    return SpikingClassifier(stem, body, seq(nn.Linear(256, num_classes)), timesteps, mean, std)
