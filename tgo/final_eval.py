"""The held-out test evaluation that produces a run's objectives.

Example:
    >>> EvalSettings(attack="pgd", eps=0.1, steps=20).eot_samples is None   # 8 if noisy, else 1
    True
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch.utils.data import Subset

from tgo.attacks import check_budget
from tgo.config import Attack, TrainConfig, as_enum
from tgo.data import DataSplits
from tgo.diagnostics import firing_rate, near_threshold_fraction
from tgo.evaluate import robustness
from tgo.neurons import recording

__all__ = ["EvalSettings", "describe_attack", "final_evaluation"]


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """Attack of the final evaluation (L-inf on [0, 1] pixels).

    ``eot_samples=None`` means 8 for a model with noise on at evaluation, else 1.
    ``max_examples`` caps the test examples attacked (None: the whole test split).
    """

    attack: Attack | str = Attack.PGD
    eps: float = 0.1
    steps: int = 20
    step_size: float | None = None
    restarts: int = 1
    eot_samples: int | None = None
    max_examples: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "attack", as_enum(Attack, self.attack, "attack"))
        check_budget(eps=self.eps, steps=self.steps, step_size=self.step_size,
                     restarts=self.restarts,
                     eot_samples=1 if self.eot_samples is None else self.eot_samples)
        if self.max_examples is not None and self.max_examples < 1:
            raise ValueError(f"max_examples: expected >= 1 or None, got {self.max_examples!r}")


def final_evaluation(model: torch.nn.Module, config: TrainConfig, splits: DataSplits,
                     settings: EvalSettings, generator: torch.Generator | None = None
                     ) -> dict[str, Any]:
    """Objectives on the test split: ``clean_acc``, ``robust_acc`` (with the ``eval_*``
    keys describing the attack), ``spike_rate`` and ``near_threshold``."""
    test = splits.test
    if settings.max_examples is not None and settings.max_examples < len(test):
        test = Subset(test, range(settings.max_examples))
    device = next(model.parameters()).device
    model.eval()
    result = robustness(model, test, attack=settings.attack, eps=settings.eps,
                        steps=settings.steps, step_size=settings.step_size,
                        restarts=settings.restarts,
                        eot_samples=settings.eot_samples,   # None: robustness() picks 8 if noisy
                        device=device, generator=generator)
    x = torch.stack([test[i][0] for i in range(min(len(test), 512))]).to(device)
    with torch.no_grad(), recording(model) as potentials:
        rate = firing_rate(model, x)
    return {**result.as_metrics(), "spike_rate": rate,
            "near_threshold": near_threshold_fraction(potentials, config.v_threshold,
                                                      config.margin),
            "eval_description": describe_attack(result)}


def describe_attack(result) -> str:
    """``PGD-20 (eps 0.1, step 0.0125, 1 restart) EOT-8, noise on``: what produced a number."""
    from tgo.attacks import AttackSpec
    spec = AttackSpec(result.attack, eps=result.eps, steps=result.steps,
                      step_size=result.step_size, restarts=result.restarts,
                      eot_samples=result.eot_samples)
    return f"{spec.describe()}, noise {'on' if result.noise_on else 'off'}"
