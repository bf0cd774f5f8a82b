"""Per-example worst case over a set of attacks: robust only if every attack fails.

A stochastic or gradient-masking network can look robust to one attack and not to another.
:func:`worst_case` runs every attack of a set on the same examples (one shared clean pass)
and counts an example robust only when it is classified correctly clean and after each
attack, so ``robust_acc <= min(each attack's accuracy)``. Its :class:`WorstCaseResult`
keeps each attack's own :class:`~tgo.evaluate.RobustnessResult` (attack, eps, steps, step
size, restarts, EOT samples, noise state) beside the worst case, so the number is never
separated from the attack set behind it.

Example:
    >>> r = worst_case(model, (x, y), ["pgd", "apgd"], eps=0.1, steps=20)  # doctest: +SKIP
    >>> r.robust_acc <= min(r.robust_by_attack().values())  # doctest: +SKIP
    True
    >>> r.description()  # doctest: +SKIP
    'worst case of [PGD-20 (eps 0.1, step 0.0125, 1 restart) EOT-8, APGD-20 (eps 0.1, ...'
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Sequence

import torch
from torch import nn

from tgo.attacks.presets import AttackSpec, make_attack
from tgo.attacks.stateless import as_stateless, eval_mode
from tgo.config import Attack
from tgo.evaluate import (DEFAULT_EOT_SAMPLES, Data, RobustnessResult, _check_run,
                          _clean_verdicts, _place)
from tgo.neurons import is_stochastic, noise as forced_noise

__all__ = ["DEFAULT_ATTACKS", "WorstCaseResult", "attack_key", "label", "worst_case"]

#: The default attack set of a sweep's robust objective: PGD and APGD-CE, both with EOT
#: when the model draws noise.
DEFAULT_ATTACKS: tuple[Attack, ...] = (Attack.PGD, Attack.APGD)


def label(result: RobustnessResult) -> str:
    """What produced one attack's number, without the numbers:
    ``"PGD-20 (eps 0.1, step 0.0125, 1 restart) EOT-8"``."""
    return result.attack_spec().describe()


def attack_key(result: RobustnessResult) -> str:
    """Metric suffix of one attack: its name, plus the attacker's surrogate when swapped
    (``"pgd"``, ``"apgd"``, ``"pgd_atan"``)."""
    key = result.attack.value
    return key if result.surrogate is None else f"{key}_{result.surrogate.value}"


def _same_or_list(values: list[Any]) -> Any:
    return values[0] if all(v == values[0] for v in values) else values


@dataclasses.dataclass(frozen=True)
class WorstCaseResult:
    """Clean accuracy, each attack's robust accuracy and their per-example worst case.

    Attributes:
        clean_acc: share classified correctly by the shared clean pass.
        robust_acc: share classified correctly clean *and* after every attack.
        attacks: each attack's own result, in the order they ran (same clean pass, so the
            same ``clean_acc`` and ``n_examples``).
        n_examples: examples evaluated.
        noise_on: whether the model drew membrane noise during the evaluation.
        correct: [N] bool, the clean verdict of each example (not compared by ``==``).
        survived: [A, N] bool, correct clean and after attack ``a`` (not compared by ``==``).
    """

    clean_acc: float
    robust_acc: float
    attacks: tuple[RobustnessResult, ...]
    n_examples: int
    noise_on: bool
    correct: torch.Tensor = dataclasses.field(compare=False, repr=False)
    survived: torch.Tensor = dataclasses.field(compare=False, repr=False)

    def keys(self) -> list[str]:
        """One metric suffix per attack (:func:`attack_key`; repeats get ``_2``, ``_3``)."""
        out: list[str] = []
        for result in self.attacks:
            key = attack_key(result)
            n = 2
            while key in out:
                key = f"{attack_key(result)}_{n}"
                n += 1
            out.append(key)
        return out

    def robust_by_attack(self) -> dict[str, float]:
        """``{"pgd": 0.46, "apgd": 0.41}``: each attack's own robust accuracy."""
        return {key: r.robust_acc for key, r in zip(self.keys(), self.attacks)}

    def description(self) -> str:
        """What produced ``robust_acc``: one attack's label, or ``"worst case of [A, B]"``,
        then the noise state, e.g. ``"worst case of [PGD-20 (...) EOT-8, APGD-20 (...)
        EOT-8], noise on"``."""
        labels = [label(r) for r in self.attacks]
        text = labels[0] if len(labels) == 1 else f"worst case of [{', '.join(labels)}]"
        return f"{text}, noise {'on' if self.noise_on else 'off'}"

    def describe(self) -> str:
        """:meth:`description` with the numbers: ``"...: robust 41.2% (pgd 46.1%, apgd
        42.0%) / clean 95.3% on 360 examples"``."""
        each = ", ".join(f"{k} {100 * v:.1f}%" for k, v in self.robust_by_attack().items())
        return (f"{self.description()}: robust {100 * self.robust_acc:.1f}% ({each}) / "
                f"clean {100 * self.clean_acc:.1f}% on {self.n_examples} examples")

    def as_metrics(self, prefix: str = "", *, include_attack: bool = True) -> dict[str, Any]:
        """Flat dict for logging, keys as in docs/CONTRACTS.md.

        ``{prefix}clean_acc``, ``{prefix}robust_acc`` (the worst case) and one
        ``{prefix}robust_acc_<key>`` per attack; with ``include_attack`` also the ``eval_*``
        keys of :meth:`RobustnessResult.as_metrics`: ``eval_attack`` joins the names with
        commas (``"pgd,apgd"``), and a setting the attacks do not share (``eval_step_size``
        of PGD and APGD) becomes a list in attack order. A one-attack set gives exactly the
        keys of that attack's :class:`RobustnessResult` plus ``robust_acc_<key>``.

        Example:
            >>> r = worst_case(model, (x, y), ["pgd", "apgd"], eps=0.1)  # doctest: +SKIP
            >>> r.as_metrics()["eval_attack"], r.as_metrics()["eval_step_size"]  # doctest: +SKIP
            ('pgd,apgd', [0.0125, 0.2])
        """
        out: dict[str, Any] = {f"{prefix}clean_acc": self.clean_acc,
                               f"{prefix}robust_acc": self.robust_acc}
        out.update({f"{prefix}robust_acc_{k}": v for k, v in self.robust_by_attack().items()})
        if not include_attack:
            return out
        each = [r.as_metrics(prefix) for r in self.attacks]
        names = [f"{prefix}eval_attack", f"{prefix}eval_eps", f"{prefix}eval_steps",
                 f"{prefix}eval_step_size", f"{prefix}eval_restarts",
                 f"{prefix}eval_eot_samples"]
        out[names[0]] = ",".join(r.attack.value for r in self.attacks)
        out.update({name: _same_or_list([m[name] for m in each]) for name in names[1:]})
        out[f"{prefix}eval_noise"] = self.noise_on
        out[f"{prefix}eval_n"] = self.n_examples
        if any(r.surrogate is not None for r in self.attacks):
            out[f"{prefix}eval_surrogate"] = _same_or_list(
                [None if r.surrogate is None else r.surrogate.value for r in self.attacks])
        return out


def _specs(attacks: Sequence[AttackSpec | Attack | str], stochastic: bool, eps: float | None,
           settings: dict[str, Any], eot_samples: int | None) -> list[AttackSpec]:
    if isinstance(attacks, (str, AttackSpec)) or not isinstance(attacks, Sequence) \
            or len(attacks) == 0:
        raise ValueError(f"attacks: expected a non-empty list of attack names or AttackSpecs, "
                         f"got {attacks!r}")
    specs = []
    for attack in attacks:
        if isinstance(attack, AttackSpec):
            specs.append(attack)
            continue
        if eps is None:
            raise ValueError(f"eps: expected a number to build attack {attack!r} by name, "
                             "got None")
        draws = eot_samples if eot_samples is not None else \
            (DEFAULT_EOT_SAMPLES if stochastic else 1)
        specs.append(make_attack(attack, eps=eps, eot_samples=draws, **settings))
    return specs


def worst_case(
    model: nn.Module,
    data: Data,
    attacks: Sequence[AttackSpec | Attack | str] = DEFAULT_ATTACKS,
    *,
    eps: float | None = None,
    steps: int = 20,
    step_size: float | None = None,
    restarts: int = 1,
    eot_samples: int | None = None,
    noise: bool | None = None,
    batch_size: int = 256,
    max_examples: int | None = None,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> WorstCaseResult:
    """Clean accuracy, each attack's accuracy and the per-example worst case on ``data``.

    Each batch gets one clean forward; every attack then runs, in order, on the examples it
    got right, and the verdict of each adversarial example is one forward (one noise draw
    for a stochastic model, as in :func:`tgo.evaluate.robustness`). An example counts in
    ``robust_acc`` only if all verdicts are correct. Mode and noise handling follow
    :func:`~tgo.evaluate.robustness` (eval mode, restored afterwards; ``noise`` forces the
    membrane noise on / off).

    Args:
        model: classifier taking [B, C, H, W] pixels in [0, 1] and returning logits.
        data: a ``Dataset``, a ``DataLoader`` or an ``(x, y)`` tensor pair.
        attacks: attack names (built with the shared budget below) and / or
            :class:`~tgo.attacks.AttackSpec` objects (used as they are); at least one.
        eps, steps, step_size, restarts: budget of the attacks given by name (``eps`` is
            required then); see :class:`~tgo.attacks.AttackSpec`.
        eot_samples: EOT draws of the attacks given by name; None gives 8 when the model
            draws noise (in eval mode, after ``noise`` is applied) and 1 otherwise.
        noise: None keeps the model's noise state; True / False forces it on / off.
        batch_size: examples per batch for a Dataset or tensor pair.
        max_examples: evaluate at most this many examples (the first ones).
        device: where to evaluate; None uses the model's device.
        generator: seeds the attacks' random starts (drawn in attack order, batch by batch).

    Returns:
        A :class:`WorstCaseResult`.

    Example:
        >>> r = worst_case(model, test_set, ["pgd", "apgd"], eps=0.1, steps=20)  # doctest: +SKIP
        >>> r.robust_acc, r.robust_by_attack()  # doctest: +SKIP
        (0.41, {'pgd': 0.46, 'apgd': 0.42})
    """
    _check_run(batch_size, max_examples, eot_samples, noise)
    budget = dict(steps=steps, step_size=step_size, restarts=restarts)
    _specs(attacks, False, eps, budget, eot_samples)   # validate before any forward pass
    device = _place(model, device, "worst_case")
    noise_ctx = contextlib.nullcontext() if noise is None else forced_noise(model, noise)
    with eval_mode(model), noise_ctx:
        noise_on = is_stochastic(model)
        specs = _specs(attacks, noise_on, eps, budget, eot_samples)
        net = as_stateless(model)
        correct_parts: list[torch.Tensor] = []
        survived_parts: list[torch.Tensor] = []
        n = 0
        for x, y, correct in _clean_verdicts(net, data, batch_size, max_examples, device):
            survived = torch.zeros(len(specs), len(y), dtype=torch.bool, device=device)
            if correct.any():
                x_ok, y_ok = x[correct], y[correct]
                for a, spec in enumerate(specs):
                    x_adv = spec.run(model, x_ok, y_ok, generator=generator)
                    with torch.no_grad():
                        survived[a, correct] = net(x_adv).argmax(dim=1) == y_ok
            n += len(y)
            correct_parts.append(correct.cpu())
            survived_parts.append(survived.cpu())
    if n == 0:
        raise ValueError("data: expected at least one example, got none")
    correct_all = torch.cat(correct_parts)
    survived_all = torch.cat(survived_parts, dim=1)
    clean_acc = int(correct_all.sum()) / n
    per_attack = tuple(
        RobustnessResult(clean_acc=clean_acc, robust_acc=int(survived_all[a].sum()) / n,
                         attack=spec.name, eps=spec.eps, steps=spec.steps,
                         step_size=spec.step_size, restarts=spec.restarts,
                         eot_samples=spec.eot_samples, noise_on=noise_on, n_examples=n,
                         surrogate=spec.surrogate)
        for a, spec in enumerate(specs))
    worst = survived_all.all(dim=0) & correct_all
    return WorstCaseResult(clean_acc=clean_acc, robust_acc=int(worst.sum()) / n,
                           attacks=per_attack, n_examples=n, noise_on=noise_on,
                           correct=correct_all, survived=survived_all)
