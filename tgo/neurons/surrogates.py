"""Surrogate gradients of the Heaviside spike, by name.

The formulas are spikingjelly's own (``spikingjelly/_ops/surrogate.py``), so a node using
``sigmoid`` with alpha 4 has exactly the gradients of spikingjelly's default
``surrogate.Sigmoid()``. ``erf`` with alpha = 1 / (sigma * sqrt(2)) is the Gaussian density
N(0, sigma^2): the exact derivative of the firing probability Phi((H - V_th) / sigma) of a
noisy neuron.

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

__all__ = ["DEFAULT_ALPHA", "resolve", "surrogate_at", "surrogate_gradient"]

# spikingjelly's defaults: Sigmoid(alpha=4), ATan(alpha=2), PiecewiseQuadratic(alpha=1).
DEFAULT_ALPHA = {Surrogate.SIGMOID: 4.0, Surrogate.ATAN: 2.0, Surrogate.TRIANGLE: 1.0}


def resolve(name: Surrogate | str | None, noise_scale: float,
            alpha: float | None = None) -> tuple[Surrogate, float]:
    """Pick the surrogate and its alpha for a neuron with noise ``noise_scale``.

    ``None`` means ``erf`` (matched to sigma) when sigma > 0, else ``sigmoid``.
    """
    kind = (Surrogate.ERF if noise_scale > 0 else Surrogate.SIGMOID) if name is None \
        else as_enum(Surrogate, name, "surrogate")
    if alpha is not None:
        if not alpha > 0:
            raise ValueError(f"surrogate_alpha: expected > 0, got {alpha!r}")
        return kind, float(alpha)
    if kind is Surrogate.ERF:
        if noise_scale <= 0:
            raise ValueError("surrogate: expected 'erf' only with noise_scale > 0 "
                             "(its width is sigma) or an explicit surrogate_alpha, "
                             f"got noise_scale={noise_scale!r}")
        return kind, 1.0 / (noise_scale * math.sqrt(2.0))
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
