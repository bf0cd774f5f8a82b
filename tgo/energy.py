"""Energy of a spiking network: synaptic operations (SOPs) per inference, measured.

On neuromorphic hardware a spiking layer costs one accumulate per spike and outgoing
synapse, so the energy of an inference is, to first order, the number of synaptic
operations: for every Conv2d or Linear layer whose input is spikes, the sum over input
spikes of the number of output units each one reaches (its fan-out), summed over the T
time steps. :func:`synaptic_operations` counts exactly that on real inputs with forward
hooks: for a Linear layer, spikes x out_features; for a Conv2d layer, a convolution of
the spikes with an all-ones kernel gives, per output position, how many spikes it
receives (borders, stride and padding included), times out_channels.

Layers fed by analog values (the stem that encodes the image) are multiply-accumulates,
not SOPs; they are counted apart (``macs``) and are the same for every model of one
architecture and T, so they do not move a front.

:func:`dense_sops` is the upper bound of an architecture: the SOPs when every neuron fires
at every step. A sweep uses it as the hypervolume reference of a ``sops`` objective.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from tgo.neurons import NoisyLIFNode
    >>> net = nn.Sequential(NoisyLIFNode(step_mode="m"), nn.Linear(3, 5))
    >>> counts = synaptic_operations(net, torch.tensor([[[4.0, 0.0, 4.0]]]), examples=1)
    >>> counts.sops   # two spikes, each reaching five outputs
    10.0
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["OpCounts", "dense_sops", "synaptic_operations"]


@dataclasses.dataclass(frozen=True)
class OpCounts:
    """Operations per inference (one example, all T steps).

    Attributes:
        sops: synaptic operations driven by spikes (accumulates).
        macs: multiply-accumulates of layers fed by analog values (the encoding stem).
    """

    sops: float
    macs: float


def _binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def _fan_out_sum(module: nn.Module, x: torch.Tensor) -> float:
    """Sum over the elements of ``x`` of value x times its fan-out in ``module``."""
    if isinstance(module, nn.Linear):
        return float(x.sum()) * module.out_features
    ones = x.new_ones(1, module.in_channels // module.groups, *module.kernel_size)
    if module.groups != 1:   # a grouped conv: each group sees its own channels
        x = x.reshape(x.shape[0] * module.groups, -1, *x.shape[2:])
    reached = F.conv2d(x, ones, stride=module.stride, padding=module.padding,
                       dilation=module.dilation)
    return float(reached.sum()) * (module.out_channels // module.groups)


def synaptic_operations(model: nn.Module, x: torch.Tensor, examples: int | None = None
                        ) -> OpCounts:
    """Count SOPs and MACs of one forward pass of ``model`` on ``x``, per example.

    The model runs as it is (train/eval mode and noise state unchanged); nothing is kept.

    Args:
        model: any network whose spiking layers feed ``nn.Conv2d`` / ``nn.Linear`` layers.
        x: a batch of inputs.
        examples: how many examples ``x`` holds (default ``len(x)``).

    Raises:
        ValueError: the batch is empty.
    """
    examples = len(x) if examples is None else examples
    if examples < 1:
        raise ValueError(f"x: expected at least one example, got {examples}")
    totals = {"sops": 0.0, "macs": 0.0}

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        inp = inputs[0].detach().float()
        if _binary(inp):
            totals["sops"] += _fan_out_sum(module, inp)
        else:   # every input element meets every weight of its receptive field
            per_output = module.weight[0].numel()
            totals["macs"] += float(output.numel()) * per_output

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Linear, nn.Conv2d))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return OpCounts(sops=totals["sops"] / examples, macs=totals["macs"] / examples)


class _AlwaysFire(nn.Module):
    """A spiking layer that fires at every step: the dense upper bound of the SOPs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(x)


def dense_sops(model: str, dataset: str, timesteps: int) -> float:
    """SOPs per inference of ``model`` on ``dataset`` if every neuron fired at every step.

    Example:
        >>> dense_sops("digits_cnn", "digits", 4) > 1e6
        True
    """
    from tgo.config import Dataset, ModelName, as_enum
    from tgo.models import INPUT_SHAPES, build

    classes = 100 if as_enum(Dataset, dataset, "dataset") is Dataset.CIFAR100 else 10
    shape = INPUT_SHAPES[as_enum(ModelName, model, "model")]
    net = build(model, classes, timesteps, [0.0] * shape[0], [1.0] * shape[0],
                neuron_factory=_AlwaysFire)
    return synaptic_operations(net.eval(), torch.zeros(1, *shape)).sops
