"""Adversarial attacks on spiking classifiers (L-inf, pixels in [0, 1]).

- :func:`fgsm`, :func:`pgd`: gradient attacks with EOT averaging for stochastic models.
- :func:`apgd`: APGD-CE (AutoAttack's step-size rule) with EOT.
- :func:`transfer`: black-box PGD crafted on an independently trained source model.
- :func:`attacker_surrogate`: attack with a surrogate gradient other than training's.
- :func:`eot_gradient`: the input gradient they share.
- :class:`Stateless`: resets the neurons around every forward, for any model.
- :class:`AttackSpec`, :func:`make_attack`: named, validated attack settings.

Example:
    >>> from tgo.attacks import make_attack
    >>> make_attack("pgd", eps=0.05, steps=5, eot_samples=4).describe()
    'PGD-5 (eps 0.05, step 0.025, 1 restart) EOT-4'
"""

from tgo.attacks.apgd import apgd
from tgo.attacks.gradient import Loss, check_budget, eot_gradient, fgsm, per_example_loss, pgd
from tgo.attacks.presets import ATTACKS, AttackSpec, make_attack
from tgo.attacks.stateless import Stateless, as_stateless, eval_mode
from tgo.attacks.surrogate import attacker_surrogate
from tgo.attacks.transfer import transfer

__all__ = [
    "ATTACKS",
    "AttackSpec",
    "Loss",
    "Stateless",
    "apgd",
    "as_stateless",
    "attacker_surrogate",
    "check_budget",
    "eot_gradient",
    "eval_mode",
    "fgsm",
    "make_attack",
    "per_example_loss",
    "pgd",
    "transfer",
]
