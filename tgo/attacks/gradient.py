"""White-box L-inf gradient attacks: FGSM, PGD and the EOT input gradient they share.

All attacks work on pixels in [0, 1] and return adversarial inputs inside the eps-ball
around ``x`` intersected with [0, 1]. They

- run the model in eval mode and restore every submodule's mode afterwards;
- wrap the model in :class:`~tgo.attacks.stateless.Stateless`, so each inner forward starts
  from reset neurons;
- take gradients with :func:`torch.autograd.grad` w.r.t. the input only, so the ``.grad``
  of the model's parameters is never touched;
- enable autograd themselves, so they work inside ``torch.no_grad()`` and
  ``torch.inference_mode()`` blocks.

Expectation over Transformation (EOT): a noisy spiking network draws fresh membrane noise
on every forward, so one gradient is a sample. :func:`eot_gradient` averages the gradient
of ``eot_samples`` forward/backward passes. The draws are stacked into one batch
(``x.repeat(n, 1, 1, 1)``), which is much faster than a loop; ``max_batch`` caps the rows
of one forward when memory is short. The average is exact either way: the loss of each
row is scaled by 1/n and the gradients of the copies of an example add up.

Example:
    >>> x_adv = pgd(model, x, y, eps=8 / 255, steps=10, eot_samples=8)  # doctest: +SKIP
    >>> (x_adv - x).abs().max() <= 8 / 255  # doctest: +SKIP
    tensor(True)
"""

from __future__ import annotations

import contextlib
import enum
import math
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from tgo.attacks.stateless import as_stateless, eval_mode
from tgo.config import as_enum

__all__ = ["Loss", "check_budget", "eot_gradient", "fgsm", "pgd", "per_example_loss"]


class Loss(str, enum.Enum):
    """Loss an attack ascends: cross-entropy, or the Carlini-Wagner logit margin."""

    CE = "ce"
    CW = "cw"


def _require(cond: bool, field: str, expected: str, got: Any) -> None:
    if not cond:
        raise ValueError(f"{field}: expected {expected}, got {got!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_budget(
    *,
    eps: Any,
    steps: Any = 1,
    step_size: Any = None,
    restarts: Any = 1,
    eot_samples: Any = 1,
) -> None:
    """Raise ``ValueError`` naming the field when an attack setting is out of range.

    Example:
        >>> check_budget(eps=1.5)
        Traceback (most recent call last):
        ...
        ValueError: eps: expected a number in [0, 1] (L-inf radius on [0, 1] pixels), got 1.5
    """
    _require(isinstance(eps, (int, float)) and not isinstance(eps, bool) and math.isfinite(eps)
             and 0 <= eps <= 1, "eps", "a number in [0, 1] (L-inf radius on [0, 1] pixels)", eps)
    _require(_is_int(steps) and steps >= 1, "steps", "an integer >= 1", steps)
    # A zero step is accepted only with a zero budget (the default 2.5 * eps / steps).
    _require(step_size is None or (isinstance(step_size, (int, float))
                                   and not isinstance(step_size, bool)
                                   and math.isfinite(step_size)
                                   and (step_size > 0 or step_size == 0 == eps)),
             "step_size", "None or a number > 0", step_size)
    _require(_is_int(restarts) and restarts >= 1, "restarts", "an integer >= 1", restarts)
    _require(_is_int(eot_samples) and eot_samples >= 1, "eot_samples", "an integer >= 1",
             eot_samples)


def _describe(t: Any) -> str:
    if isinstance(t, torch.Tensor):
        return f"a {t.dtype} tensor of shape {tuple(t.shape)}"
    return f"a {type(t).__name__}"


def _check_inputs(x: Any, y: Any) -> None:
    if not (isinstance(x, torch.Tensor) and x.is_floating_point() and x.dim() >= 2):
        raise ValueError(f"x: expected a floating tensor [B, ...] of pixels, got {_describe(x)}")
    if not (isinstance(y, torch.Tensor) and y.dim() == 1 and y.shape[0] == x.shape[0]
            and not y.is_floating_point() and y.dtype is not torch.bool):
        raise ValueError(f"y: expected an integer tensor of shape [{x.shape[0]}], "
                         f"got {_describe(y)}")
    if x.numel():
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            raise ValueError(f"x: expected pixels in [0, 1], got values in [{lo:g}, {hi:g}]")


def per_example_loss(logits: torch.Tensor, y: torch.Tensor, loss: Loss | str = Loss.CE
                     ) -> torch.Tensor:
    """Loss of each row (shape [B]); the attack ascends it.

    ``ce`` is the cross-entropy; ``cw`` is ``max_{j != y} z_j - z_y``, positive exactly when
    the example is misclassified.
    """
    loss = as_enum(Loss, loss, "loss")
    if loss is Loss.CE:
        return F.cross_entropy(logits, y, reduction="none")
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return others.amax(dim=1) - true


@contextlib.contextmanager
def _attack_context(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode, reset neurons, and autograd on (even inside no_grad / inference_mode)."""
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        yield as_stateless(model)


def _normal(t: torch.Tensor) -> torch.Tensor:
    """A tensor autograd may save (inference-mode tensors are cloned), detached."""
    return t.clone() if t.is_inference() else t.detach()


def _draws_per_forward(batch: int, eot_samples: int, max_batch: int | None) -> int:
    if max_batch is None:
        return eot_samples
    return max(1, min(eot_samples, max_batch // max(batch, 1)))


def _eot_grad(net: nn.Module, x: torch.Tensor, y: torch.Tensor, eot_samples: int,
              loss: Loss, max_batch: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean input gradient and mean per-example loss over ``eot_samples`` draws."""
    x_var = x.detach().clone().requires_grad_(True)
    grad = torch.zeros_like(x_var)
    loss_sum = torch.zeros(x.shape[0], dtype=torch.float32, device=x.device)
    chunk = _draws_per_forward(x.shape[0], eot_samples, max_batch)
    done = 0
    while done < eot_samples:
        n = min(chunk, eot_samples - done)
        rows = x_var.repeat(n, *([1] * (x.dim() - 1))) if n > 1 else x_var
        per_row = per_example_loss(net(rows), y.repeat(n) if n > 1 else y, loss)
        (g,) = torch.autograd.grad(per_row.sum() / eot_samples, x_var)
        grad += g
        loss_sum += per_row.detach().float().view(n, -1).sum(0)
        done += n
    return grad, loss_sum / eot_samples


@torch.no_grad()
def _eot_verdict(net: nn.Module, x: torch.Tensor, y: torch.Tensor, eot_samples: int,
                 loss: Loss, max_batch: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean per-example loss over the draws, and whether the mean logits misclassify."""
    logit_sum = None
    loss_sum = torch.zeros(x.shape[0], dtype=torch.float32, device=x.device)
    chunk = _draws_per_forward(x.shape[0], eot_samples, max_batch)
    done = 0
    while done < eot_samples:
        n = min(chunk, eot_samples - done)
        rows = x.repeat(n, *([1] * (x.dim() - 1))) if n > 1 else x
        logits = net(rows).float()
        loss_sum += per_example_loss(logits, y.repeat(n) if n > 1 else y, loss).view(n, -1).sum(0)
        part = logits.view(n, x.shape[0], -1).sum(0)
        logit_sum = part if logit_sum is None else logit_sum + part
        done += n
    return loss_sum / eot_samples, logit_sum.argmax(dim=1) != y


def eot_gradient(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eot_samples: int = 1,
    loss: Loss | str = Loss.CE,
    max_batch: int | None = None,
) -> torch.Tensor:
    """Gradient of the per-example loss w.r.t. ``x``, averaged over ``eot_samples`` draws.

    Row ``i`` of the result is ``d loss_i / d x_i`` (losses are summed over the batch, not
    averaged, so a row does not depend on the batch size). On a deterministic model any
    ``eot_samples`` gives the plain gradient.

    Args:
        model: classifier taking ``x`` and returning logits [B, classes].
        x: inputs [B, ...] in [0, 1].
        y: integer labels [B].
        eot_samples: forward/backward passes averaged (fresh noise each).
        loss: ``"ce"`` or ``"cw"``.
        max_batch: largest number of rows in one forward (None: all draws at once).

    Example:
        >>> g = eot_gradient(model, x, y, eot_samples=8)  # doctest: +SKIP
    """
    check_budget(eps=0.0, eot_samples=eot_samples)
    _check_inputs(x, y)
    loss = as_enum(Loss, loss, "loss")
    with _attack_context(model) as net:
        grad, _ = _eot_grad(net, _normal(x), _normal(y), eot_samples, loss, max_batch)
    return grad


def _ascend(x_adv: torch.Tensor, grad: torch.Tensor, step: float) -> torch.Tensor:
    return x_adv + step * grad.sign()


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    eot_samples: int = 1,
    loss: Loss | str = Loss.CE,
    max_batch: int | None = None,
) -> torch.Tensor:
    """Fast Gradient Sign Method: one step of size ``eps`` along the sign of the gradient.

    Args:
        model, x, y, eot_samples, loss, max_batch: as in :func:`eot_gradient`.
        eps: L-inf radius on [0, 1] pixels.

    Returns:
        ``clamp(x + eps * sign(grad), 0, 1)``, detached.

    Example:
        >>> x_adv = fgsm(model, x, y, eps=0.1)  # doctest: +SKIP
    """
    check_budget(eps=eps, eot_samples=eot_samples)
    _check_inputs(x, y)
    loss = as_enum(Loss, loss, "loss")
    with _attack_context(model) as net:
        x, y = _normal(x), _normal(y)
        grad, _ = _eot_grad(net, x, y, eot_samples, loss, max_batch)
        return _project(_ascend(x, grad, float(eps)), x, float(eps)).detach()


def _random_start(x: torch.Tensor, eps: float, generator: torch.Generator | None
                  ) -> torch.Tensor:
    device = generator.device if generator is not None else x.device
    noise = torch.rand(x.shape, generator=generator, device=device, dtype=x.dtype)
    return _project(x + (2 * noise.to(x.device) - 1) * eps, x, eps)


def _pgd_once(net: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int,
              step_size: float, random_start: bool, eot_samples: int, loss: Loss,
              max_batch: int | None, generator: torch.Generator | None) -> torch.Tensor:
    x_adv = _random_start(x, eps, generator) if random_start else x.clone()
    for _ in range(steps):
        grad, _ = _eot_grad(net, x_adv, y, eot_samples, loss, max_batch)
        x_adv = _project(_ascend(x_adv, grad, step_size), x, eps)
    return x_adv


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    steps: int = 20,
    step_size: float | None = None,
    random_start: bool = True,
    restarts: int = 1,
    eot_samples: int = 1,
    generator: torch.Generator | None = None,
    loss: Loss | str = Loss.CE,
    max_batch: int | None = None,
) -> torch.Tensor:
    """Projected Gradient Descent in the L-inf ball (Madry et al.), with restarts and EOT.

    Each step moves ``step_size`` along the sign of the (EOT-averaged) gradient, then
    projects onto the eps-ball around ``x`` and onto [0, 1]. With ``restarts > 1`` the
    attack is re-run from new random starts on the examples not yet fooled, and each
    example keeps its first successful adversarial, or else the one with the highest loss.
    Success and loss are judged on the logits averaged over ``eot_samples`` draws.

    Args:
        model, x, y, eot_samples, loss, max_batch: as in :func:`eot_gradient`.
        eps: L-inf radius on [0, 1] pixels.
        steps: gradient steps per restart.
        step_size: per-step move; None gives Madry's ``2.5 * eps / steps``.
        random_start: start from a uniform point of the eps-ball instead of ``x``.
        restarts: independent runs; never lowers the success of the attack.
        generator: seeds the random starts (None: torch's global generator).

    Returns:
        The adversarial inputs, detached, same shape and dtype as ``x``.

    Example:
        >>> x_adv = pgd(model, x, y, eps=0.1, steps=10, restarts=2)  # doctest: +SKIP
    """
    check_budget(eps=eps, steps=steps, step_size=step_size, restarts=restarts,
                 eot_samples=eot_samples)
    _check_inputs(x, y)
    loss = as_enum(Loss, loss, "loss")
    eps = float(eps)
    step = 2.5 * eps / steps if step_size is None else float(step_size)
    run = dict(eps=eps, steps=steps, step_size=step, random_start=random_start,
               eot_samples=eot_samples, loss=loss, max_batch=max_batch, generator=generator)
    with _attack_context(model) as net:
        return with_restarts(net, _normal(x), _normal(y),
                             lambda xs, ys: _pgd_once(net, xs, ys, **run),
                             restarts, eot_samples, loss, max_batch)


def with_restarts(net: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  once: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], restarts: int,
                  eot_samples: int, loss: Loss, max_batch: int | None) -> torch.Tensor:
    """Run ``once`` (one attack from a fresh start), then re-run it ``restarts - 1`` times
    on the examples not yet fooled; each keeps its first success, else its highest loss."""
    best = once(x, y)
    if restarts == 1:
        return best.detach()
    best_loss, fooled = _eot_verdict(net, best, y, eot_samples, loss, max_batch)
    for _ in range(restarts - 1):
        todo = (~fooled).nonzero().squeeze(1)
        if todo.numel() == 0:
            break
        cand = once(x[todo], y[todo])
        cand_loss, cand_fooled = _eot_verdict(net, cand, y[todo], eot_samples, loss, max_batch)
        better = cand_fooled | (cand_loss > best_loss[todo])
        take = todo[better]
        best[take] = cand[better]
        best_loss[take] = cand_loss[better]
        fooled[take] = cand_fooled[better]
    return best.detach()
