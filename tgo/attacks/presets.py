"""Named attacks: one table turns a name into a validated, frozen :class:`AttackSpec`.

Strings become :class:`tgo.config.Attack` members here, at the boundary, so an unknown
attack fails at once with the list of valid names. The attack functions are imported
lazily from the table, as in syne-tune's ``baselines.py``.

Example:
    >>> spec = make_attack("pgd", eps=0.1, steps=10)
    >>> spec.step_size, spec.describe()
    (0.025, 'PGD-10 (eps 0.1, step 0.025, 1 restart)')
    >>> make_attack("fgsm", eps=0.1).steps
    1
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable

import torch
from torch import nn

from tgo.attacks.gradient import Loss, check_budget
from tgo.config import Attack, Surrogate, as_enum

__all__ = ["ATTACKS", "AttackSpec", "make_attack"]

# name -> "module:function". FGSM ignores steps / step size / restarts / random start.
ATTACKS: dict[Attack, str] = {
    Attack.FGSM: "tgo.attacks.gradient:fgsm",
    Attack.PGD: "tgo.attacks.gradient:pgd",
    Attack.APGD: "tgo.attacks.apgd:apgd",
}

_SINGLE_STEP = {Attack.FGSM}
# Parameter-free: the step size starts at 2 * eps and adapts (no random_start switch).
_ADAPTIVE = {Attack.APGD}


def _function(name: Attack) -> Callable[..., torch.Tensor]:
    module, attr = ATTACKS[name].split(":")
    return getattr(importlib.import_module(module), attr)


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """One L-inf attack, fully specified. Distances are on [0, 1] pixels.

    Attributes:
        name: which attack (:class:`tgo.config.Attack`; strings are converted).
        eps: L-inf radius, in [0, 1].
        steps: gradient steps per restart (FGSM: always 1).
        step_size: per-step move; None resolves to ``2.5 * eps / steps`` (FGSM: ``eps``;
            APGD: always its initial ``2 * eps``, then adaptive).
        restarts: independent random restarts (FGSM: always 1).
        eot_samples: gradients averaged per step over this many noise draws.
        random_start: start from a random point of the ball (FGSM: never).
        loss: ``"ce"`` (cross-entropy) or ``"cw"`` (logit margin).
        surrogate: the attacker's surrogate gradient (``sigmoid`` | ``atan`` | ``triangle``
            | ``erf``), swapped in around the attack only (see
            :func:`~tgo.attacks.surrogate.attacker_surrogate`); None keeps training's.
    """

    name: Attack | str
    eps: float
    steps: int = 20
    step_size: float | None = None
    restarts: int = 1
    eot_samples: int = 1
    random_start: bool = True
    loss: Loss | str = Loss.CE
    surrogate: Surrogate | str | None = None

    def __post_init__(self) -> None:
        name = as_enum(Attack, self.name, "attack")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "loss", as_enum(Loss, self.loss, "loss"))
        if self.surrogate is not None:
            object.__setattr__(self, "surrogate",
                               as_enum(Surrogate, self.surrogate, "surrogate"))
        check_budget(eps=self.eps, steps=self.steps, step_size=self.step_size,
                     restarts=self.restarts, eot_samples=self.eot_samples)
        if not isinstance(self.random_start, bool):
            raise ValueError(f"random_start: expected a bool, got {self.random_start!r}")
        eps = float(self.eps)
        object.__setattr__(self, "eps", eps)
        if name in _SINGLE_STEP:
            object.__setattr__(self, "steps", 1)
            object.__setattr__(self, "step_size", eps)
            object.__setattr__(self, "restarts", 1)
            object.__setattr__(self, "random_start", False)
        elif name in _ADAPTIVE:
            object.__setattr__(self, "step_size", 2.0 * eps)
            object.__setattr__(self, "random_start", True)
        elif self.step_size is None:
            object.__setattr__(self, "step_size", 2.5 * eps / self.steps)
        else:
            object.__setattr__(self, "step_size", float(self.step_size))

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
            generator: torch.Generator | None = None, max_batch: int | None = None
            ) -> torch.Tensor:
        """Attack ``model`` on ``(x, y)`` and return the adversarial inputs.

        With ``surrogate`` set, the model's surrogate gradient is swapped for the attack
        and restored afterwards.
        """
        if self.surrogate is None:
            return self._run(model, x, y, generator, max_batch)
        from tgo.attacks.surrogate import attacker_surrogate

        with attacker_surrogate(model, self.surrogate):
            return self._run(model, x, y, generator, max_batch)

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             generator: torch.Generator | None, max_batch: int | None) -> torch.Tensor:
        fn = _function(self.name)
        common = dict(eot_samples=self.eot_samples, loss=self.loss, max_batch=max_batch)
        if self.name in _SINGLE_STEP:
            return fn(model, x, y, self.eps, **common)
        if self.name in _ADAPTIVE:
            return fn(model, x, y, self.eps, steps=self.steps, restarts=self.restarts,
                      generator=generator, **common)
        return fn(model, x, y, self.eps, steps=self.steps, step_size=self.step_size,
                  random_start=self.random_start, restarts=self.restarts,
                  generator=generator, **common)

    def describe(self) -> str:
        """Short label, e.g. ``"PGD-20 (eps 0.1, step 0.0125, 1 restart) EOT-8"``."""
        plural = "" if self.restarts == 1 else "s"
        if self.name in _SINGLE_STEP:
            text = f"{self.name.value.upper()} (eps {self.eps:g})"
        elif self.name in _ADAPTIVE:
            text = (f"{self.name.value.upper()}-{self.steps} (eps {self.eps:g}, "
                    f"{self.restarts} restart{plural})")
        else:
            text = (f"{self.name.value.upper()}-{self.steps} (eps {self.eps:g}, "
                    f"step {self.step_size:.4g}, {self.restarts} restart{plural})")
        if self.loss is not Loss.CE:
            text += f" {self.loss.value.upper()} loss"
        if self.eot_samples > 1:
            text += f" EOT-{self.eot_samples}"
        if self.surrogate is not None:
            text += f", {self.surrogate.value} surrogate"
        return text


def make_attack(name: Attack | str, **settings: Any) -> AttackSpec:
    """Build the :class:`AttackSpec` called ``name``; unknown names list the valid ones.

    Args:
        name: ``"fgsm"``, ``"pgd"`` or ``"apgd"`` (or an :class:`~tgo.config.Attack`).
        **settings: any :class:`AttackSpec` field except ``name``.

    Example:
        >>> make_attack("apgd", eps=0.1, steps=50).describe()
        'APGD-50 (eps 0.1, 1 restart)'
        >>> make_attack("cw", eps=0.1)
        Traceback (most recent call last):
        ...
        ValueError: attack: expected one of 'fgsm', 'pgd', 'apgd', got 'cw'
    """
    fields = {f.name for f in dataclasses.fields(AttackSpec)} - {"name"}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise ValueError(f"make_attack: unknown setting(s) {unknown}; known: {sorted(fields)}")
    return AttackSpec(name=name, **settings)
