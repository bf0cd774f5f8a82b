r"""The noisy LIF neuron as a pure function of (input, state, parameters, noise).

Per step t, with input X[t], potential V[t-1] and Gaussian noise xi[t] ~ N(0, sigma^2):

.. math::
    H[t] = V[t-1] + \frac{1}{\tau}\left(X[t] - (V[t-1] - V_{reset})\right)
    \qquad S[t] = \Theta(H[t] + \xi[t] - V_{th})

    V[t] = S[t] V_{reset} + (1 - S[t]) H[t] \quad \text{(hard reset)}
    \qquad V[t] = H[t] - S[t] V_{th} \quad \text{(soft reset)}

Potentials are in units of V_th (dimensionless), time in steps. The backward pass uses the
surrogate gradient dS/dH = g(H - V_th): for the ``erf`` surrogate matched to sigma this is
the Gaussian density, the exact derivative of the firing probability
E[S] = Phi((H - V_th) / sigma). With xi = 0 every number equals spikingjelly's LIFNode.

The whole T-step loop is one autograd node (forward and backward written out), so the
charged potentials H come out of the forward pass at no extra cost and the guard loss can
back-propagate through them without a second forward pass.
"""

from __future__ import annotations

import dataclasses

import torch

from tgo.config import Surrogate
from tgo.neurons.surrogates import surrogate_gradient

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
    @staticmethod
    def forward(ctx, x_seq, v, noise, p: LIFParams):
        dtype = x_seq.dtype
        x_seq = x_seq.float()
        v = v.float()
        reset_value = 0.0 if p.v_reset is None else p.v_reset
        spikes, charged = [], []
        for t in range(x_seq.shape[0]):
            x = x_seq[t]
            if p.decay_input:
                h = v + (x - (v - reset_value)) / p.tau
            else:
                h = v - (v - reset_value) / p.tau + x
            drive = h if noise is None else h + noise[t]
            spike = (drive >= p.v_threshold).to(torch.float32)
            if p.v_reset is None:
                v = h - spike * p.v_threshold
            else:
                v = spike * p.v_reset + (1 - spike) * h
            spikes.append(spike)
            charged.append(h)
        spike_seq = torch.stack(spikes)
        h_seq = torch.stack(charged)
        ctx.save_for_backward(h_seq, spike_seq)
        ctx.params = p
        ctx.in_dtype = dtype
        return spike_seq.to(dtype), h_seq, v

    @staticmethod
    def backward(ctx, g_spike, g_h, g_v):
        h_seq, spike_seq = ctx.saved_tensors
        p: LIFParams = ctx.params
        steps = h_seq.shape[0]
        gx = torch.empty_like(h_seq)
        carry = g_v.float() if g_v is not None else torch.zeros_like(h_seq[0])
        keep = 1.0 - 1.0 / p.tau
        in_scale = 1.0 / p.tau if p.decay_input else 1.0
        for t in range(steps - 1, -1, -1):
            h = h_seq[t]
            sg = surrogate_gradient(h - p.v_threshold, p.surrogate, p.alpha)
            if p.v_reset is None:
                dv_dh = 1.0 if p.detach_reset else 1.0 - p.v_threshold * sg
            else:
                dv_dh = 1.0 - spike_seq[t]
                if not p.detach_reset:
                    dv_dh = dv_dh + (p.v_reset - h) * sg
            gh = carry * dv_dh
            if g_spike is not None:
                gh = gh + g_spike[t].float() * sg
            if g_h is not None:
                gh = gh + g_h[t]
            gx[t] = gh * in_scale
            carry = gh * keep
        return gx.to(ctx.in_dtype), carry, None, None


def noisy_lif_multi_step(x_seq: torch.Tensor, v: torch.Tensor, noise: torch.Tensor | None,
                         params: LIFParams) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the neuron over ``x_seq`` [T, ...] from potential ``v`` [...].

    Args:
        x_seq: input current per step, [T, ...].
        v: potential before the first step, shaped like ``x_seq[0]``.
        noise: xi, shaped like ``x_seq`` (already scaled by sigma), or None for no noise.
        params: the layer's constants.

    Returns:
        ``(spikes [T, ...], H [T, ...] float32, V after the last step)``; all three carry
        gradients (surrogate gradient for the spikes).

    Example:
        >>> import torch
        >>> s, h, v = noisy_lif_multi_step(torch.ones(3, 2), torch.zeros(2), None, LIFParams())
        >>> s[:, 0].tolist()   # H = 0.5, 0.75, 0.875: never reaches V_th = 1
        [0.0, 0.0, 0.0]
    """
    return _NoisyLIF.apply(x_seq, v, noise, params)
