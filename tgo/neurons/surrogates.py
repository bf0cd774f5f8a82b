"""Surrogate gradients of the Heaviside spike, by name.

The formulas are spikingjelly's own (``spikingjelly/_ops/surrogate.py``), so a node using
``sigmoid`` with alpha 4 has exactly the gradients of spikingjelly's default
``surrogate.Sigmoid()``. ``erf`` is a Gaussian density N(0, s^2) with alpha = 1 / (s sqrt 2).

The default width of ``erf`` on a neuron with noise sigma is s = sqrt(sigma^2 + S0^2): the
derivative of the expected spike E[S] = Phi((H - V_th) / s) when the threshold is smoothed
by a Gaussian of std S0 on top of the membrane noise. S0 = 1 / sqrt(2 pi) gives the
Gaussian the peak (1) and the area (1) of spikingjelly's ``Sigmoid(alpha=4)``, the surrogate
of a noiseless neuron, so the gradient never gets narrower than at sigma = 0. The exact
density of the noise alone (s = sigma) collapses as sigma -> 0: at sigma 0.035 few
potentials get any gradient and a digits network stays at chance (issue 15); pass
``alpha = 1 / (sigma sqrt 2)`` to get it back.

Example:
    >>> import torch
    >>> g = surrogate_gradient(torch.zeros(1), Surrogate.SIGMOID, 4.0)
    >>> float(g)  # alpha * s * (1 - s) at 0
    1.0
"""

from __future__ import annotations

import math

import torch

from tgo.config import Surrogate, as_enum

__all__ = ["DEFAULT_ALPHA", "SMOOTHING_STD", "erf_alpha", "resolve", "surrogate_at",
           "surrogate_gradient"]

# spikingjelly's defaults: Sigmoid(alpha=4), ATan(alpha=2), PiecewiseQuadratic(alpha=1).
DEFAULT_ALPHA = {Surrogate.SIGMOID: 4.0, Surrogate.ATAN: 2.0, Surrogate.TRIANGLE: 1.0}

# S0: the std of the Gaussian whose peak, 1 / (S0 sqrt(2 pi)), is Sigmoid(alpha=4)'s peak,
# alpha / 4 = 1 (both have area 1, so they have the same effective width, area / peak).
SMOOTHING_STD = 1.0 / math.sqrt(2.0 * math.pi)


def erf_alpha(noise_scale: float, smoothing: float = SMOOTHING_STD) -> float:
    """alpha of the default ``erf`` surrogate: a Gaussian of std sqrt(sigma^2 + S0^2)."""
    return 1.0 / (math.sqrt(2.0) * math.hypot(noise_scale, smoothing))


def resolve(name: Surrogate | str | None, noise_scale: float,
            alpha: float | None = None) -> tuple[Surrogate, float]:
    """Pick the surrogate and its alpha for a neuron with noise ``noise_scale``.

    ``None`` means ``erf`` (std sqrt(sigma^2 + S0^2)) when sigma > 0, else ``sigmoid``
    (alpha 4, spikingjelly's default, so a noiseless neuron is exactly spikingjelly's).
    """
    kind = (Surrogate.ERF if noise_scale > 0 else Surrogate.SIGMOID) if name is None \
        else as_enum(Surrogate, name, "surrogate")
    if alpha is not None:
        if not alpha > 0:
            raise ValueError(f"surrogate_alpha: expected > 0, got {alpha!r}")
        return kind, float(alpha)
    if kind is Surrogate.ERF:
        return kind, erf_alpha(noise_scale)
    return kind, DEFAULT_ALPHA[kind]


_MAX_Z2 = 60.0


def surrogate_gradient(x: torch.Tensor, kind: Surrogate, alpha: float) -> torch.Tensor:
    """d spike / d x of the surrogate at ``x = H - V_th``."""
    if kind is Surrogate.SIGMOID:
        s = torch.sigmoid(alpha * x)
        return (1 - s) * s * alpha
    if kind is Surrogate.ATAN:
        z = x * (math.pi / 2 * alpha)
        return (alpha / 2) / (1 + z * z)
    if kind is Surrogate.TRIANGLE:
        return (alpha - alpha * alpha * x.abs()).clamp_min(0)
    if kind is Surrogate.ERF:
        # exp(-z^2) underflows into denormal floats for |z| > 9.3 (potentials far below
        # the threshold), and arithmetic on denormals is many times slower on x86 CPUs:
        # capping z^2 at 60 keeps the density >= 1e-26, a bias nothing can notice, and
        # made a digits_cnn training step 5-7% faster (benchmarks/train_step.py).
        z2 = torch.mul(x, alpha).square_().clamp_(max=_MAX_Z2)
        return z2.neg_().exp_().mul_(alpha / math.sqrt(math.pi))
    raise AssertionError(f"unhandled surrogate {kind}")


def surrogate_at(h: torch.Tensor, v_threshold: float, kind: Surrogate,
                 alpha: float) -> torch.Tensor:
    """:func:`surrogate_gradient` at ``x = h - v_threshold``, in as few passes over ``h`` as
    the formula allows: the neuron's backward calls it on all T x N potentials at once, and
    on a CPU each pass over them costs about as much as the arithmetic.

    For ``erf``, alpha/sqrt(pi) * exp(-z^2) is computed as exp(ln(alpha/sqrt(pi)) - z^2)
    (one addcmul, one clamp, one exp after the subtraction) instead of seven passes.
    """
    x = torch.sub(h, v_threshold)
    if kind is not Surrogate.ERF:
        return surrogate_gradient(x, kind, alpha)
    log_scale = math.log(alpha / math.sqrt(math.pi))
    # new_full fills on the device (new_tensor would copy from the host and wait for the GPU)
    y = torch.addcmul(x.new_full((), log_scale), x, x, value=-alpha * alpha)
    return y.clamp_min_(log_scale - _MAX_Z2).exp_()
