r"""The noisy LIF neuron as a pure function of (input, state, parameters, noise).

Per step t, with input X[t], potential V[t-1] and Gaussian noise xi[t] ~ N(0, sigma^2):

.. math::
    H[t] = V[t-1] + \frac{1}{\tau}\left(X[t] - (V[t-1] - V_{reset})\right)
    \qquad S[t] = \Theta(H[t] + \xi[t] - V_{th})

    V[t] = S[t] V_{reset} + (1 - S[t]) H[t] \quad \text{(hard reset)}
    \qquad V[t] = H[t] - S[t] V_{th} \quad \text{(soft reset)}

Potentials are in units of V_th (dimensionless), time in steps. The backward pass uses the
surrogate gradient dS/dH = g(H - V_th): the default for sigma > 0 is the Gaussian density of
std sqrt(sigma^2 + S0^2), the derivative of the firing probability Phi((H - V_th) / s) with
the threshold smoothed by S0 besides the noise (:mod:`tgo.neurons.surrogates`). With xi = 0 every number equals spikingjelly's LIFNode.

The whole T-step loop is one autograd node (forward and backward written out), so the
charged potentials H come out of the forward pass at no extra cost and the guard loss can
back-propagate through them without a second forward pass.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from tgo.config import Surrogate
from tgo.neurons.surrogates import surrogate_at

__all__ = ["LIFParams", "noisy_lif_multi_step"]


@dataclasses.dataclass(frozen=True)
class LIFParams:
    """Constants of a LIF layer (potentials in units of V_th, tau in steps)."""

    tau: float = 2.0
    v_threshold: float = 1.0
    v_reset: float | None = 0.0
    decay_input: bool = True
    detach_reset: bool = False
    surrogate: Surrogate = Surrogate.SIGMOID
    alpha: float = 4.0


class _NoisyLIF(torch.autograd.Function):
    """Forward and backward of T steps written out.

    Per step the forward runs three or four kernels (charge, compare, reset) into
    preallocated [T, ...] buffers; the backward evaluates the surrogate and the reset
    derivative for all T at once and loops over time only for the two-kernel recurrence.

    On a CPU a training step of a small network is bound by memory traffic, so every pass
    over the T x N potentials counts: spikes are written as floats straight from the
    comparison (no bool-to-float copy), the default hard reset to 0 is one ``addcmul``
    (V = H - H * S), the backward saves the float spikes it returns (the next layer keeps
    them anyway) and needs no zero-filled gradient for unused outputs. This is what keeps
    the noisy neuron, which must also draw T x N Gaussians, close to the cost of
    spikingjelly's LIFNode (``benchmarks/train_step.py --breakdown``).
    """

    @staticmethod
    def forward(ctx, x_seq, v, noise, p: LIFParams, thresholds=None):
        ctx.set_materialize_grads(False)
        dtype = x_seq.dtype
        x_seq = x_seq.float()
        v = v.float()
        steps = x_seq.shape[0]
        h_seq = torch.empty_like(x_seq, memory_format=torch.contiguous_format)
        spikes = torch.empty_like(h_seq)
        # Fire when H + xi >= V_th, i.e. H >= V_th - xi (a per-element threshold).
        if thresholds is not None:
            noise, threshold = thresholds, thresholds   # drawn as V_th - xi already
        else:
            threshold = p.v_threshold if noise is None else torch.sub(p.v_threshold, noise)
        zero_reset = p.v_reset == 0.0
        # (X - V) / tau as (X - V) * (1 / tau) when that is exact (tau a power of two, as
        # the default 2): one pass fewer per step, the same bits.
        inv_tau = 1.0 / p.tau
        exact_inv = p.decay_input and math.frexp(inv_tau)[0] == 0.5
        drive = torch.empty_like(h_seq[0])         # reused every step: no allocation
        v_out = torch.empty_like(h_seq[0])
        for t in range(steps):
            if p.decay_input:
                torch.sub(x_seq[t], v if p.v_reset in (None, 0.0) else v - p.v_reset, out=drive)
                if exact_inv:
                    h = torch.add(v, drive, alpha=inv_tau, out=h_seq[t])
                else:
                    h = torch.add(v, drive.div_(p.tau), out=h_seq[t])
            else:
                h = torch.sub(v, (v if p.v_reset in (None, 0.0) else v - p.v_reset) / p.tau,
                              out=h_seq[t]).add_(x_seq[t])
            th = threshold if noise is None else threshold[t]
            if p.v_reset is None:                        # soft reset: V = H - V_th * S
                s = torch.ge(h, th, out=spikes[t])
                v = torch.sub(h, s, alpha=p.v_threshold, out=v_out)
            elif zero_reset:                             # V = H - H * S: exactly 0 or H
                s = torch.ge(h, th, out=spikes[t])
                v = torch.addcmul(h, h, s, value=-1.0, out=v_out)
            else:                                        # V = V_reset where S, else H
                fired = torch.ge(h, th)
                spikes[t].copy_(fired)
                v = h.masked_fill(fired, p.v_reset)
        out = spikes.to(dtype)
        ctx.save_for_backward(h_seq, spikes)
        ctx.params = p
        ctx.in_dtype = dtype
        return out, h_seq, v

    @staticmethod
    def backward(ctx, g_spike, g_h, g_v):
        h_seq, spikes = ctx.saved_tensors
        p: LIFParams = ctx.params
        sg = surrogate_at(h_seq, p.v_threshold, p.surrogate, p.alpha)
        if p.v_reset is None:
            dv_dh = None if p.detach_reset else torch.sub(1.0, sg, alpha=p.v_threshold)
        else:
            dv_dh = torch.sub(1.0, spikes)                    # dV/dH through "not fired"
            if not p.detach_reset:                            # + (V_reset - H) * dS/dH
                if p.v_reset == 0.0:
                    dv_dh.addcmul_(h_seq, sg, value=-1.0)
                else:
                    dv_dh.addcmul_(torch.sub(p.v_reset, h_seq), sg)
        # Direct gradient into H[t]: through the spike and from the recorded H.
        if g_spike is None:
            direct = torch.zeros_like(h_seq) if g_h is None else g_h.float().clone()
        elif g_h is None:
            direct = torch.mul(g_spike.float(), sg)
        else:
            direct = torch.addcmul(g_h.float(), g_spike.float(), sg)
        gh = direct  # filled in place, last step first
        carry = None if g_v is None else g_v.float()
        keep = 1.0 - 1.0 / p.tau
        out = torch.empty_like(h_seq[0])           # the carried gradient, reused every step
        for t in range(h_seq.shape[0] - 1, -1, -1):
            if carry is not None:
                if dv_dh is None:
                    gh[t].add_(carry)
                else:
                    gh[t].addcmul_(carry, dv_dh[t])
            carry = torch.mul(gh[t], keep, out=out)
        gx = gh.div_(p.tau) if p.decay_input else gh
        return gx.to(ctx.in_dtype), carry, None, None, None


def noisy_lif_multi_step(x_seq: torch.Tensor, v: torch.Tensor, noise: torch.Tensor | None,
                         params: LIFParams, *, thresholds: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the neuron over ``x_seq`` [T, ...] from potential ``v`` [...].

    Args:
        x_seq: input current per step, [T, ...].
        v: potential before the first step, shaped like ``x_seq[0]``.
        noise: xi, shaped like ``x_seq`` (already scaled by sigma), or None for no noise.
        params: the layer's constants.
        thresholds: instead of ``noise``, the per-element firing thresholds V_th - xi
            (shaped like ``x_seq``); drawing them directly as N(V_th, sigma^2) saves a pass
            over T x N elements (-xi and xi have the same law).

    Returns:
        ``(spikes [T, ...], H [T, ...] float32, V after the last step)``; all three carry
        gradients (surrogate gradient for the spikes).

    Example:
        >>> import torch
        >>> s, h, v = noisy_lif_multi_step(torch.ones(3, 2), torch.zeros(2), None, LIFParams())
        >>> s[:, 0].tolist()   # H = 0.5, 0.75, 0.875: never reaches V_th = 1
        [0.0, 0.0, 0.0]
    """
    return _NoisyLIF.apply(x_seq, v, noise, params, thresholds)
