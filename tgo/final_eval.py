"""The held-out test evaluation that produces a run's objectives.

The robust objective is the per-example worst case over a set of attacks (default: PGD and
APGD-CE, both with EOT when the model draws noise; see :mod:`tgo.worst_case`), so a
configuration cannot look robust by masking the gradient of one attack. A single attack
(``attack="pgd"``) still works and reports exactly as before.

Example:
    >>> EvalSettings(eps=0.1, steps=20).attacks      # the default set
    (<Attack.PGD: 'pgd'>, <Attack.APGD: 'apgd'>)
    >>> EvalSettings(attack="fgsm", eps=0.1).attacks   # one attack, as before
    (<Attack.FGSM: 'fgsm'>,)
    >>> EvalSettings(attack="pgd", eps=0.1, steps=20).eot_samples is None   # 8 if noisy, else 1
    True
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch
from torch.utils.data import Subset

from tgo.attacks import check_budget
from tgo.config import Attack, TrainConfig, as_enum
from tgo.data import DataSplits
from tgo.diagnostics import firing_rate, near_threshold_fraction
from tgo.energy import synaptic_operations
from tgo.evaluate import RobustnessResult
from tgo.neurons import recording
from tgo.worst_case import DEFAULT_ATTACKS, WorstCaseResult, label, worst_case

__all__ = ["EvalSettings", "describe_attack", "final_evaluation"]


def _attack_tuple(attacks: Any) -> tuple[Attack, ...]:
    if isinstance(attacks, (str, Attack)) or not isinstance(attacks, Sequence) or not attacks:
        raise ValueError(f"attacks: expected a non-empty list of attack names "
                         f"({', '.join(a.value for a in Attack)}), got {attacks!r}")
    out = tuple(as_enum(Attack, a, "attacks") for a in attacks)
    if len(set(out)) < len(out):
        raise ValueError(f"attacks: expected distinct attacks, got "
                         f"{[a.value for a in out]!r}")
    return out


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """Attacks of the final evaluation (L-inf on [0, 1] pixels).

    Attributes:
        attack: a single attack (the form before attack sets); None when ``attacks`` is
            given. Given alone it means ``attacks=(attack,)``.
        eps, steps, step_size, restarts: the budget every attack shares (APGD picks its
            own step size, FGSM takes one step).
        eot_samples: EOT draws per gradient; None means 8 for a model with noise on at
            evaluation, else 1.
        max_examples: cap on the test examples attacked (None: the whole test split).
        attacks: the attack set whose per-example worst case is ``robust_acc``; None (and
            no ``attack``) gives :data:`tgo.worst_case.DEFAULT_ATTACKS`, PGD and APGD.
    """

    attack: Attack | str | None = None
    eps: float = 0.1
    steps: int = 20
    step_size: float | None = None
    restarts: int = 1
    eot_samples: int | None = None
    max_examples: int | None = None
    attacks: Sequence[Attack | str] | None = None

    def __post_init__(self) -> None:
        single = None if self.attack is None else as_enum(Attack, self.attack, "attack")
        attacks = None if self.attacks is None else _attack_tuple(self.attacks)
        if single is not None and attacks is not None and attacks != (single,):
            raise ValueError(f"attack: expected None when attacks is given (attacks "
                             f"{[a.value for a in attacks]!r} lists the whole set), "
                             f"got {single.value!r}")
        if attacks is None:
            attacks = DEFAULT_ATTACKS if single is None else (single,)
        object.__setattr__(self, "attack", single)
        object.__setattr__(self, "attacks", attacks)
        check_budget(eps=self.eps, steps=self.steps, step_size=self.step_size,
                     restarts=self.restarts,
                     eot_samples=1 if self.eot_samples is None else self.eot_samples)
        if self.max_examples is not None and self.max_examples < 1:
            raise ValueError(f"max_examples: expected >= 1 or None, got {self.max_examples!r}")


def final_evaluation(model: torch.nn.Module, config: TrainConfig, splits: DataSplits,
                     settings: EvalSettings, generator: torch.Generator | None = None
                     ) -> dict[str, Any]:
    """Objectives on the test split.

    ``clean_acc``; ``robust_acc``, the per-example worst case over ``settings.attacks``;
    ``robust_acc_<attack>`` for each attack; the ``eval_*`` keys describing the attacks
    (:meth:`tgo.worst_case.WorstCaseResult.as_metrics`); ``eval_description`` naming the
    whole set; ``spike_rate`` and ``near_threshold``; ``sops``, the synaptic operations
    per inference (:mod:`tgo.energy`), with ``macs`` of the analog stem beside it. The three
    activity metrics come from forwards of the first 512 test examples, noise as deployed.
    """
    test = splits.test
    if settings.max_examples is not None and settings.max_examples < len(test):
        test = Subset(test, range(settings.max_examples))
    device = next(model.parameters()).device
    model.eval()
    result = worst_case(model, test, settings.attacks, eps=settings.eps, steps=settings.steps,
                        step_size=settings.step_size, restarts=settings.restarts,
                        eot_samples=settings.eot_samples,   # None: 8 if noisy, else 1
                        device=device, generator=generator)
    x = torch.stack([test[i][0] for i in range(min(len(test), 512))]).to(device)
    with torch.no_grad(), recording(model) as potentials:
        rate = firing_rate(model, x)
    ops = synaptic_operations(model, x)
    return {**result.as_metrics(), "spike_rate": rate, "sops": ops.sops, "macs": ops.macs,
            "near_threshold": near_threshold_fraction(potentials, config.v_threshold,
                                                      config.margin),
            "eval_description": describe_attack(result)}


def describe_attack(result: RobustnessResult | WorstCaseResult) -> str:
    """What produced a number: ``"PGD-20 (eps 0.1, step 0.0125, 1 restart) EOT-8, noise on"``
    for one attack, ``"worst case of [PGD-20 (...) EOT-8, APGD-20 (...) EOT-8], noise on"``
    for a set."""
    if isinstance(result, WorstCaseResult):
        return result.description()
    return f"{label(result)}, noise {'on' if result.noise_on else 'off'}"
