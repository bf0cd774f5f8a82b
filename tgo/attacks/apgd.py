"""APGD-CE: Auto-PGD with the AutoAttack step-size rule (Croce & Hein, ICML 2020), with EOT.

APGD needs no step size: it starts at ``2 * eps`` and halves it, per example, at the
checkpoints ``w_j = ceil(p_j * steps)`` with ``p_0 = 0``, ``p_1 = 0.22`` and
``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``, when

1. fewer than ``rho = 0.75`` of the steps since the last checkpoint increased the loss, or
2. the step size and the best loss are both unchanged since the last checkpoint,

and then restarts that example from the best point found so far. Each step is a sign step
with momentum ``alpha = 0.75``::

    z      = P(x_k + eta * sign(grad))
    x_k+1  = P(x_k + alpha * (z - x_k) + (1 - alpha) * (x_k - x_k-1))

(the first step is the plain ``z``). ``P`` projects onto the eps-ball around ``x`` and
[0, 1]. The gradient (and the loss that drives the schedule) is the EOT average over
``eot_samples`` noise draws, as in :func:`tgo.attacks.gradient.eot_gradient`.

Example:
    >>> checkpoints(100)
    [0, 22, 41, 57, 70, 80, 87, 93, 99]
    >>> x_adv = apgd(model, x, y, eps=0.1, steps=50, eot_samples=8)  # doctest: +SKIP
"""

from __future__ import annotations

import torch
from torch import nn

from tgo.attacks.gradient import (Loss, _attack_context, _check_inputs, _eot_grad, _normal,
                                  _project, _random_start, check_budget, with_restarts)
from tgo.config import as_enum

__all__ = ["MOMENTUM", "RHO", "apgd", "checkpoints"]

#: Share of loss-increasing steps below which the step size is halved.
RHO = 0.75
#: Weight of the new sign step against the previous move.
MOMENTUM = 0.75


def checkpoints(steps: int) -> list[int]:
    """Iterations at which APGD may halve its step size: ``ceil(p_j * steps)``, ``p_j <= 1``.

    The ``p_j`` are multiples of 0.01, so they are computed in hundredths, exactly.

    Example:
        >>> checkpoints(10)
        [0, 3, 5, 6, 7, 8, 9, 10]
    """
    check_budget(eps=0.0, steps=steps)
    hundredths = [0, 22]
    while True:
        nxt = hundredths[-1] + max(hundredths[-1] - hundredths[-2] - 3, 6)
        if nxt > 100:
            break
        hundredths.append(nxt)
    return sorted({-(-p * steps // 100) for p in hundredths})


def _apgd_once(net: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
               eot_samples: int, loss: Loss, max_batch: int | None,
               generator: torch.Generator | None) -> torch.Tensor:
    """One APGD run from a uniform random start; returns each example's best point."""
    shape = (-1, *([1] * (x.dim() - 1)))
    x_cur = _random_start(x, eps, generator)
    grad, cur_loss = _eot_grad(net, x_cur, y, eot_samples, loss, max_batch)
    best, best_loss, best_grad = x_cur.clone(), cur_loss.clone(), grad.clone()
    x_prev = x_cur.clone()
    eta = torch.full((x.shape[0],), 2.0 * eps, dtype=x.dtype, device=x.device)
    marks = set(checkpoints(steps)) - {0}
    last_mark = 0
    increases = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    best_loss_at_mark = best_loss.clone()
    halved_at_mark = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for k in range(steps):
        z = _project(x_cur + eta.view(shape) * grad.sign(), x, eps)
        if k == 0:
            x_new = z
        else:
            x_new = _project(x_cur + MOMENTUM * (z - x_cur)
                             + (1 - MOMENTUM) * (x_cur - x_prev), x, eps)
        x_prev, x_cur = x_cur, x_new
        grad, new_loss = _eot_grad(net, x_cur, y, eot_samples, loss, max_batch)
        increases += (new_loss > cur_loss).long()
        cur_loss = new_loss
        better = cur_loss > best_loss
        best[better], best_loss[better], best_grad[better] = \
            x_cur[better], cur_loss[better], grad[better]
        it = k + 1
        if it in marks and it < steps:
            oscillating = increases < RHO * (it - last_mark)
            stalled = ~halved_at_mark & (best_loss <= best_loss_at_mark)
            halve = oscillating | stalled
            eta[halve] /= 2
            # Restart from the best point, without momentum.
            x_cur[halve], x_prev[halve] = best[halve], best[halve]
            cur_loss[halve], grad[halve] = best_loss[halve], best_grad[halve]
            halved_at_mark, best_loss_at_mark = halve, best_loss.clone()
            increases.zero_()
            last_mark = it
    return best


def apgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    steps: int = 100,
    restarts: int = 1,
    eot_samples: int = 1,
    generator: torch.Generator | None = None,
    loss: Loss | str = Loss.CE,
    max_batch: int | None = None,
) -> torch.Tensor:
    """APGD in the L-inf ball (cross-entropy by default), with random restarts and EOT.

    Each run starts from a uniform point of the eps-ball and returns, per example, the
    point of highest (EOT-averaged) loss it visited. With ``restarts > 1`` later runs
    attack only the examples not yet fooled, and each example keeps its first successful
    adversarial or else the one with the highest loss (as :func:`~tgo.attacks.pgd`).

    Args:
        model, x, y, eot_samples, loss, max_batch: as in
            :func:`~tgo.attacks.eot_gradient`.
        eps: L-inf radius on [0, 1] pixels.
        steps: iterations per run (gradient evaluations: ``steps + 1``).
        restarts: independent runs; never lowers the success of the attack.
        generator: seeds the random starts (None: torch's global generator).

    Returns:
        The adversarial inputs, detached, same shape and dtype as ``x``.

    Example:
        >>> x_adv = apgd(model, x, y, eps=0.1, steps=20, restarts=2)  # doctest: +SKIP
    """
    check_budget(eps=eps, steps=steps, restarts=restarts, eot_samples=eot_samples)
    _check_inputs(x, y)
    loss = as_enum(Loss, loss, "loss")
    eps = float(eps)
    run = dict(eps=eps, steps=steps, eot_samples=eot_samples, loss=loss,
               max_batch=max_batch, generator=generator)
    with _attack_context(model) as net:
        return with_restarts(net, _normal(x), _normal(y),
                             lambda xs, ys: _apgd_once(net, xs, ys, **run),
                             restarts, eot_samples, loss, max_batch)
