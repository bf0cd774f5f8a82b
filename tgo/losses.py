r"""The threshold-guard loss of TGO and its weight schedule.

For each spiking layer l with pre-spike potentials H_l (recorded by
:func:`tgo.neurons.recording`), threshold V_th and margin delta:

.. math::
    C_l = \operatorname{mean}_{i,t} \max(0, \delta - |H_{l,i}[t] - V_{th}|)
    \qquad L = L_{task} + \lambda(\text{progress}) \sum_l C_l

The hinge is zero for neurons at least delta away from the threshold and pushes the
others away from it, in both directions (units: V_th).

Example:
    >>> import torch
    >>> h = [torch.tensor([1.0, 1.2, 2.0])]          # |H - 1| = 0, 0.2, 1.0
    >>> round(float(threshold_guard_loss(h, v_threshold=1.0, margin=0.5)), 4)  # (0.5+0.3+0)/3
    0.2667
    >>> round(LambdaSchedule(0.6)(0.25), 4)   # cosine ramp over the first half: halfway there
    0.3
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
import torch

from tgo.config import LambdaSchedule as ScheduleKind
from tgo.config import as_enum

__all__ = ["LambdaSchedule", "threshold_guard_loss"]


class _GuardHinge(torch.autograd.Function):
    """Sum over layers of mean(max(0, delta - |H - V_th|)^p), p in {1, 2}, as one autograd
    node with a hand-written backward: d/dH = -p * hinge^(p-1) * sign(H - V_th) / N inside
    the band, 0 outside.

    Both use C = clamp(H - V_th, -delta, delta), the distance clipped to the band, since
    max(0, delta - |D|) = delta - |C| exactly (|C| is delta to the bit outside the band).
    The linear loss of a layer is then delta - sum |C| / N, summed in float64 so that it is
    exactly 0 when every potential is outside the band, and its gradient is -sign(C) / N
    where |C| < delta: four passes over H forward and three backward, against eleven for
    the plain formula. On a CPU a training step of a small network is bound by memory
    traffic, so the passes over the T x N potentials are what the guard costs; on a GPU it
    is bound by kernel launches, hence one node for all layers.
    """

    @staticmethod
    def forward(ctx, v_threshold: float, margin: float, squared: bool, *hs):
        band = float(np.float32(margin))          # delta as H's float32 values hold it
        clipped = [torch.sub(h.float(), v_threshold).clamp_(-band, band) for h in hs]
        ctx.save_for_backward(*clipped)
        ctx.squared, ctx.band, ctx.in_dtypes = squared, band, [h.dtype for h in hs]
        if squared:
            return sum(c.abs().neg_().add_(band).square_().mean() for c in clipped)
        total = None
        for c in clipped:   # accumulates -sum|C| / N per layer, in float64
            part = c.abs().sum(dtype=torch.float64)
            total = part.mul_(-1.0 / c.numel()) if total is None else \
                total.add_(part, alpha=-1.0 / c.numel())
        return total.add_(band * len(clipped)).float()

    @staticmethod
    def backward(ctx, grad):
        grads = []
        neg = -grad
        for c, dtype in zip(ctx.saved_tensors, ctx.in_dtypes):
            scale = neg * (1.0 / c.numel())
            if ctx.squared:  # -2 (delta - |C|) sign(C) = -2 (delta sign(C) - C): 0 on the edges
                out = torch.sign(c).mul_(ctx.band).sub_(c).mul_(2 * scale)
            else:            # sign(C) inside the open band, 0 on its edges (H outside it)
                out = torch.ops.aten.hardtanh_backward(torch.sign(c).mul_(scale), c,
                                                       -ctx.band, ctx.band)
            grads.append(out.to(dtype))
        return (None, None, None, *grads)


def threshold_guard_loss(potentials: Sequence[torch.Tensor], v_threshold: float, margin: float,
                         squared: bool = False) -> torch.Tensor:
    """Sum over layers of the mean hinge max(0, margin - |H - V_th|) (squared if asked).

    At |H - V_th| = 0 exactly the gradient is 0 (sign(0)); everywhere else inside the band
    it pushes H away from V_th.
    """
    if not margin > 0:
        raise ValueError(f"margin: expected delta > 0, got {margin!r}")
    if len(potentials) == 0:
        raise ValueError("potentials: expected at least one recorded layer, got none "
                         "(was the forward pass run inside tgo.neurons.recording?)")
    return _GuardHinge.apply(float(v_threshold), float(margin), bool(squared), *potentials)


@dataclasses.dataclass(frozen=True)
class LambdaSchedule:
    """lambda as a function of training progress in [0, 1].

    ``cosine``: lambda_max * (1 - cos(pi * progress / ramp_fraction)) / 2 until
    ``ramp_fraction``, then lambda_max. ``constant``: lambda_max throughout.
    """

    margin_weight: float
    ramp_fraction: float = 0.5
    kind: ScheduleKind | str = ScheduleKind.COSINE

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", as_enum(ScheduleKind, self.kind, "lambda_schedule"))
        if not self.margin_weight >= 0:
            raise ValueError(f"margin_weight: expected lambda >= 0, got {self.margin_weight!r}")
        if not 0 < self.ramp_fraction <= 1:
            raise ValueError(f"ramp_fraction: expected in (0, 1], got {self.ramp_fraction!r}")

    def __call__(self, progress: float) -> float:
        if self.kind is ScheduleKind.CONSTANT or progress >= self.ramp_fraction:
            return float(self.margin_weight)
        ramp = max(progress, 0.0) / self.ramp_fraction
        return float(self.margin_weight * (1 - math.cos(math.pi * ramp)) / 2)
