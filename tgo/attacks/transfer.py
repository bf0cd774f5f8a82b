"""Black-box transfer attack: PGD crafted on an independently trained source model.

The attacker never touches the target's gradients: adversarial inputs are made by
:func:`~tgo.attacks.pgd` on ``source_model`` (e.g. a plain, noise-free SNN trained with
another seed) and then shown to the target. A defence that only masks its own gradients
does not stop them.

Example:
    >>> x_adv = transfer(plain, defended, x, y, eps=0.1, steps=20)  # doctest: +SKIP
    >>> (defended(x_adv).argmax(1) == y).float().mean()  # doctest: +SKIP
"""

from __future__ import annotations

import torch
from torch import nn

from tgo.attacks.gradient import Loss, _check_inputs, pgd
from tgo.attacks.stateless import as_stateless, eval_mode

__all__ = ["transfer"]


def _num_classes(model: nn.Module, x: torch.Tensor) -> int:
    with eval_mode(model), torch.no_grad():
        return int(as_stateless(model)(x[:1]).shape[-1])


def transfer(
    source_model: nn.Module,
    target_model: nn.Module,
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
    """Adversarial inputs for ``target_model`` crafted by PGD on ``source_model`` only.

    ``target_model`` is used for one forward on one example, to check that both models
    classify into the same number of classes; its gradients are never taken.

    Args:
        source_model: the attacker's own model (white-box to the attacker).
        target_model: the model under attack (black box).
        x, y, eps, steps, step_size, random_start, restarts, eot_samples, generator, loss,
            max_batch: as in :func:`~tgo.attacks.pgd`, applied to ``source_model``.

    Returns:
        The adversarial inputs (same shape and dtype as ``x``), to be classified by the
        target.

    Raises:
        ValueError: bad settings (as :func:`~tgo.attacks.pgd`), or models whose numbers
            of classes differ.

    Example:
        >>> x_adv = transfer(plain, defended, x, y, eps=0.1)  # doctest: +SKIP
    """
    _check_inputs(x, y)
    if len(x):
        source_classes, target_classes = _num_classes(source_model, x), \
            _num_classes(target_model, x)
        if source_classes != target_classes:
            raise ValueError(f"source_model: expected {target_classes} classes like the "
                             f"target, got {source_classes}")
    return pgd(source_model, x, y, eps, steps=steps, step_size=step_size,
               random_start=random_start, restarts=restarts, eot_samples=eot_samples,
               generator=generator, loss=loss, max_batch=max_batch)
