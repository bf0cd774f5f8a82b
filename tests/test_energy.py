"""Synaptic operations (tgo.energy): exact counts on small layers, bounds on a real model."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from tgo.config import TrainConfig
from tgo.energy import dense_sops, synaptic_operations
from tgo.models import build
from tgo.neurons import NoisyLIFNode


class _Spikes(nn.Module):
    """Feeds fixed spikes to the next layer (stands in for a spiking layer)."""

    def __init__(self, spikes: torch.Tensor) -> None:
        super().__init__()
        self.spikes = spikes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spikes


def _brute_force_conv(spikes: torch.Tensor, conv: nn.Conv2d) -> float:
    """Per spike, count the outputs whose receptive field holds it (loops, no convolution)."""
    _, _, h, w = spikes.shape
    out_h = (h + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1
    out_w = (w + 2 * conv.padding[1] - conv.kernel_size[1]) // conv.stride[1] + 1
    total = 0
    for n, c, i, j in (tuple(int(v) for v in idx) for idx in spikes.nonzero()):
        for oi, oj in itertools.product(range(out_h), range(out_w)):
            top, left = oi * conv.stride[0] - conv.padding[0], oj * conv.stride[1] - conv.padding[1]
            if top <= i < top + conv.kernel_size[0] and left <= j < left + conv.kernel_size[1]:
                total += conv.out_channels
    return float(total)


@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1), (1, 0)])
def test_conv_sops_equal_a_brute_force_count(stride, padding):
    spikes = (torch.rand(3, 4, 6, 6, generator=torch.Generator().manual_seed(stride)) < 0.3)
    spikes = spikes.float()
    conv = nn.Conv2d(4, 5, 3, stride=stride, padding=padding)
    counts = synaptic_operations(nn.Sequential(_Spikes(spikes), conv), torch.zeros(3, 1))
    assert counts.sops == pytest.approx(_brute_force_conv(spikes, conv) / 3)
    assert counts.macs == 0


def test_linear_sops_and_analog_layers_as_macs():
    spikes = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    net = nn.Sequential(nn.Linear(2, 4), NoisyLIFNode(step_mode="s"), nn.Linear(4, 3))
    with torch.no_grad():    # make the first layer's output 2.0 at units 0, 2, 3 (spikes there)
        net[0].weight.zero_()
        net[0].bias.copy_(4 * spikes[0])
    counts = synaptic_operations(net, torch.rand(1, 2))
    assert counts.sops == 3 * 3          # three spikes, each driving three outputs
    assert counts.macs == 4 * 2          # the analog layer: 4 outputs x 2 inputs


def test_a_real_model_is_between_silence_and_the_dense_bound():
    config = TrainConfig(timesteps=4, noise_scale=0.0)
    model = build("digits_cnn", 10, 4, [0.3], [0.4]).eval()
    x = torch.rand(16, 1, 8, 8)
    counts = synaptic_operations(model, x)
    assert 0 < counts.sops < dense_sops("digits_cnn", "digits", config.timesteps)
    # no input current, no spikes: only the stem's MACs remain
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.zero_(), m.bias.fill_(-5.0)
    silent = synaptic_operations(model, x)
    assert silent.sops == 0 and silent.macs == counts.macs > 0


def test_dense_bound_scales_with_t_and_counts_every_synapse():
    two, four = dense_sops("digits_cnn", "digits", 2), dense_sops("digits_cnn", "digits", 4)
    assert four == 2 * two
    # per step: conv 32->64 3x3 on 8x8 with padding 1, fc 64*4*4 -> 128, fc 128 -> 10
    reach = sum(min(i + 1, 8 - 1) - max(i - 1, 0) + 1 for i in range(8)) ** 2   # 22 ** 2
    assert two / 2 == 32 * reach * 64 + 64 * 4 * 4 * 128 + 128 * 10


def test_empty_batch_is_an_error():
    with pytest.raises(ValueError, match="at least one example"):
        synaptic_operations(nn.Linear(2, 2), torch.zeros(0, 2))
