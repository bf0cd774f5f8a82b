"""Spiking VGG-11 and WRN-16-4 for 32x32 RGB images (the paper's models)."""

from __future__ import annotations

from torch import nn

from tgo.models.base import NeuronFactory, SpikingClassifier, conv_bn, seq

__all__ = ["vgg11", "wrn16"]

_VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def vgg11(num_classes: int, timesteps: int, make_neuron: NeuronFactory,
          mean, std, in_channels: int = 3) -> SpikingClassifier:
    """VGG-11 with BN and average pooling; the first conv + BN is the stem."""
    stem = nn.Sequential(*conv_bn(in_channels, _VGG11[0]))
    body: list[nn.Module] = [make_neuron()]
    c_in = _VGG11[0]
    for item in _VGG11[1:]:
        if item == "M":
            body.append(seq(nn.AvgPool2d(2)))
        else:
            body += [seq(*conv_bn(c_in, item)), make_neuron()]
            c_in = item
    body.append(seq(nn.Flatten()))
    return SpikingClassifier(stem, nn.Sequential(*body), seq(nn.Linear(512, num_classes)),
                             timesteps, mean, std)


class _SpikingBlock(nn.Module):
    """Wide-ResNet basic block: conv-BN-LIF-conv-BN, plus shortcut, then LIF."""

    def __init__(self, c_in: int, c_out: int, stride: int, make_neuron: NeuronFactory):
        super().__init__()
        self.conv1 = seq(*conv_bn(c_in, c_out, stride))
        self.sn1 = make_neuron()
        self.conv2 = seq(*conv_bn(c_out, c_out))
        self.shortcut = (seq(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                             nn.BatchNorm2d(c_out))
                         if stride != 1 or c_in != c_out else nn.Identity())
        self.sn2 = make_neuron()

    def forward(self, x_seq):
        return self.sn2(self.conv2(self.sn1(self.conv1(x_seq))) + self.shortcut(x_seq))


def wrn16(num_classes: int, timesteps: int, make_neuron: NeuronFactory,
          mean, std, in_channels: int = 3, widen: int = 4) -> SpikingClassifier:
    """WRN-16-4: three groups of two blocks, widths 16*widen, 32*widen, 64*widen."""
    stem = nn.Sequential(*conv_bn(in_channels, 16))
    widths = [16 * widen, 32 * widen, 64 * widen]
    blocks: list[nn.Module] = [make_neuron()]
    c_in = 16
    for group, width in enumerate(widths):
        for i in range(2):
            stride = 2 if (group > 0 and i == 0) else 1
            blocks.append(_SpikingBlock(c_in, width, stride, make_neuron))
            c_in = width
    blocks += [seq(nn.AdaptiveAvgPool2d(1), nn.Flatten())]
    return SpikingClassifier(stem, nn.Sequential(*blocks), seq(nn.Linear(c_in, num_classes)),
                             timesteps, mean, std)
