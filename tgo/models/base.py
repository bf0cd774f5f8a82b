"""The frame every spiking model shares: normalise, encode, run T steps, average logits."""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import torch
from spikingjelly.activation_based import functional, layer
from torch import nn

from tgo.config import Surrogate
from tgo.neurons import NoisyLIFNode

__all__ = ["NeuronSettings", "SpikingClassifier", "conv_bn", "seq"]

NeuronFactory = Callable[[], nn.Module]


@dataclasses.dataclass(frozen=True)
class NeuronSettings:
    """How every spiking layer of a model is built (units: V_th; tau in steps)."""

    tau: float = 2.0
    v_threshold: float = 1.0
    v_reset: float | None = 0.0
    noise_scale: float = 0.0
    surrogate: Surrogate | str | None = None
    noise_at_eval: bool = True
    detach_reset: bool = False

    def factory(self, generator: torch.Generator | None = None) -> NeuronFactory:
        """A zero-argument constructor of multi-step ``NoisyLIFNode`` layers."""
        def make() -> nn.Module:
            return NoisyLIFNode(tau=self.tau, v_threshold=self.v_threshold, v_reset=self.v_reset,
                                noise_scale=self.noise_scale, surrogate=self.surrogate,
                                noise_at_eval=self.noise_at_eval, generator=generator,
                                detach_reset=self.detach_reset, step_mode="m")
        return make


def conv_bn(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out)]


def seq(*modules: nn.Module) -> nn.Module:
    """Apply stateless layers to every step of a [T, B, ...] sequence."""
    return layer.SeqToANNContainer(*modules)


class SpikingClassifier(nn.Module):
    """A directly encoded SNN classifier: pixels in [0, 1] in, logits averaged over T out.

    ``stem`` (stateless, e.g. conv + BN) runs once on the image; its output is repeated
    over the T steps (the input is constant over time, so this equals running it T times)
    and fed to ``body``, a multi-step module on [T, B, ...]. ``head`` maps the body's
    output per step to logits; the model returns their mean over T. Every forward starts
    from reset neurons, so an attack's repeated forwards never see stale membrane state.

    Args:
        stem, body, head: the three parts.
        timesteps: T.
        mean, std: per-channel input normalisation, applied inside the model so that
            attacks work on [0, 1] pixels.
    """

    def __init__(self, stem: nn.Module, body: nn.Module, head: nn.Module, timesteps: int,
                 mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
            raise ValueError(f"timesteps: expected T >= 1, got {timesteps!r}")
        self.stem, self.body, self.head = stem, body, head
        self.timesteps = timesteps
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"x: expected images [B, C, H, W], got shape {tuple(x.shape)}")
        functional.reset_net(self)
        encoded = self.stem((x - self.mean) / self.std)
        x_seq = encoded.unsqueeze(0).expand(self.timesteps, *encoded.shape)
        out_seq = self.head(self.body(x_seq))
        return out_seq.mean(0)
