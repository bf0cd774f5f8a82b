"""One entry point for robustness: clean and attacked accuracy, with what produced them.

:func:`robustness` runs an attack from :mod:`tgo.attacks` over a data set and returns a
:class:`RobustnessResult` that names the attack, eps, steps, step size, restarts, EOT
samples and noise state behind its two numbers (as RobustBench's ``benchmark()`` does).

Example:
    >>> result = robustness(model, (x, y), attack="pgd", eps=0.1, steps=10)  # doctest: +SKIP
    >>> result.robust_acc <= result.clean_acc, result.eot_samples  # doctest: +SKIP
    (True, 8)
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from typing import Any, Iterator, Union

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tgo.attacks.presets import AttackSpec, make_attack
from tgo.attacks.stateless import as_stateless, eval_mode
from tgo.config import Attack, Surrogate
from tgo.neurons import is_stochastic, noise as forced_noise

__all__ = ["DEFAULT_EOT_SAMPLES", "RobustnessResult", "robustness"]

#: EOT draws per gradient when the model is stochastic and ``eot_samples`` is None.
DEFAULT_EOT_SAMPLES = 8

Data = Union[Dataset, DataLoader, tuple[torch.Tensor, torch.Tensor]]


@dataclasses.dataclass(frozen=True)
class RobustnessResult:
    """Clean and robust accuracy, and the attack that produced the robust one.

    Attributes:
        clean_acc: share of examples classified correctly (one forward each).
        robust_acc: share classified correctly both clean and after the attack.
        attack: the attack's name.
        eps: L-inf radius on [0, 1] pixels.
        steps, step_size, restarts: the attack's budget (FGSM: 1, eps, 1).
        eot_samples: noise draws averaged per gradient.
        noise_on: whether the model drew membrane noise during the evaluation.
        n_examples: examples evaluated.
        surrogate: the attacker's surrogate gradient, when it differed from training's.
        source: label of the source model of a black-box transfer attack (the attack ran
            on it, the accuracies are the target's); None for a white-box attack.
    """

    clean_acc: float
    robust_acc: float
    attack: Attack
    eps: float
    steps: int
    step_size: float
    restarts: int
    eot_samples: int
    noise_on: bool
    n_examples: int
    surrogate: Surrogate | None = None
    source: str | None = None

    def attack_spec(self) -> AttackSpec:
        """The attack that produced ``robust_acc``, as an :class:`~tgo.attacks.AttackSpec`."""
        return AttackSpec(self.attack, eps=self.eps, steps=self.steps, step_size=self.step_size,
                          restarts=self.restarts, eot_samples=self.eot_samples,
                          surrogate=self.surrogate)

    def describe(self) -> str:
        """One line, e.g. ``"PGD-20 (eps 0.1, step 0.0125, 1 restart) EOT-8, noise on:
        robust 41.2% / clean 95.3% on 360 examples"``."""
        spec = self.attack_spec()
        text = spec.describe() if self.source is None else \
            f"transfer from {self.source}: {spec.describe()}"
        return (f"{text}, noise {'on' if self.noise_on else 'off'}: "
                f"robust {100 * self.robust_acc:.1f}% / clean {100 * self.clean_acc:.1f}% "
                f"on {self.n_examples} examples")

    def as_metrics(self, prefix: str = "", *, include_attack: bool = True) -> dict[str, Any]:
        """Flat dict for logging, keys as in docs/CONTRACTS.md.

        ``{prefix}clean_acc`` and ``{prefix}robust_acc``, plus (with ``include_attack``) the
        attack's description as ``{prefix}eval_attack``, ``eval_eps``, ``eval_steps``,
        ``eval_step_size``, ``eval_restarts``, ``eval_eot_samples``, ``eval_noise`` and
        ``eval_n``; ``eval_surrogate`` and ``eval_source`` only when set.

        Example:
            >>> r = RobustnessResult(0.9, 0.4, Attack.PGD, 0.1, 10, 0.025, 1, 8, True, 100)
            >>> r.as_metrics("val_", include_attack=False)
            {'val_clean_acc': 0.9, 'val_robust_acc': 0.4}
        """
        out: dict[str, Any] = {f"{prefix}clean_acc": self.clean_acc,
                               f"{prefix}robust_acc": self.robust_acc}
        if include_attack:
            out.update({
                f"{prefix}eval_attack": self.attack.value,
                f"{prefix}eval_eps": self.eps,
                f"{prefix}eval_steps": self.steps,
                f"{prefix}eval_step_size": self.step_size,
                f"{prefix}eval_restarts": self.restarts,
                f"{prefix}eval_eot_samples": self.eot_samples,
                f"{prefix}eval_noise": self.noise_on,
                f"{prefix}eval_n": self.n_examples,
            })
            if self.surrogate is not None:
                out[f"{prefix}eval_surrogate"] = self.surrogate.value
            if self.source is not None:
                out[f"{prefix}eval_source"] = self.source
        return out


def _positive_int(value: Any, field: str, allow_none: bool = False) -> None:
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        expected = "None or an integer >= 1" if allow_none else "an integer >= 1"
        raise ValueError(f"{field}: expected {expected}, got {value!r}")


def _check_run(batch_size: Any, max_examples: Any, eot_samples: Any, noise: Any) -> None:
    """The argument checks :func:`robustness` and :func:`tgo.worst_case.worst_case` share."""
    _positive_int(batch_size, "batch_size")
    _positive_int(max_examples, "max_examples", allow_none=True)
    _positive_int(eot_samples, "eot_samples", allow_none=True)
    if noise is not None and not isinstance(noise, bool):
        raise ValueError(f"noise: expected None, True or False, got {noise!r}")


def _place(model: nn.Module, device: torch.device | str | None, caller: str) -> torch.device:
    """Warn when ``model`` is in training mode, move it to ``device`` if one is given, and
    return the device it evaluates on."""
    if model.training:
        warnings.warn(f"{caller}: the model is in training mode; evaluating it in eval mode "
                      "(and restoring training mode afterwards). Call model.eval() first.",
                      stacklevel=3)
    if device is not None:
        model.to(device)
    return _model_device(model)


def _clean_verdicts(net: nn.Module, data: Data, batch_size: int, max_examples: int | None,
                    device: torch.device
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The batches of ``data`` (at most ``max_examples`` examples in all) on ``device``, each
    with its clean verdict from one forward of ``net``: yields ``(x, y, correct)``. The
    batch loop shared by :func:`robustness` and :func:`tgo.worst_case.worst_case`."""
    n = 0
    for x, y in _batches(data, batch_size):
        if max_examples is not None:
            x, y = x[:max_examples - n], y[:max_examples - n]
        if len(x) == 0:
            return
        x = x.to(device=device, dtype=torch.float32)
        y = y.to(device=device, dtype=torch.long)
        with torch.no_grad():
            correct = net(x).argmax(dim=1) == y
        yield x, y, correct
        n += len(y)
        if max_examples is not None and n >= max_examples:
            return


def _batches(data: Data, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(data, (tuple, list)) and len(data) == 2 \
            and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
        if len(x) != len(y):
            raise ValueError("data: expected an (x, y) pair of tensors of equal length, got "
                             f"lengths {len(x)} and {len(y)}")
        for start in range(0, len(x), batch_size):
            yield x[start:start + batch_size], y[start:start + batch_size]
        return
    if isinstance(data, Dataset):
        data = DataLoader(data, batch_size=batch_size, shuffle=False)
    if not isinstance(data, DataLoader):
        raise ValueError("data: expected a torch Dataset, a DataLoader or an (x, y) tensor "
                         f"pair, got {type(data).__name__}")
    for batch in data:
        yield batch[0], batch[1]


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _stochastic_in_eval(model: nn.Module) -> bool:
    with eval_mode(model):
        return is_stochastic(model)


def robustness(
    model: nn.Module,
    data: Data,
    *,
    attack: Attack | str = "pgd",
    eps: float,
    steps: int = 20,
    step_size: float | None = None,
    restarts: int = 1,
    eot_samples: int | None = None,
    noise: bool | None = None,
    batch_size: int = 256,
    max_examples: int | None = None,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
    surrogate: Surrogate | str | None = None,
    source: nn.Module | None = None,
    source_label: str = "source model",
) -> RobustnessResult:
    """Clean and robust accuracy of ``model`` on ``data`` under an L-inf attack.

    The model is evaluated in eval mode (a model handed over in training mode triggers a
    warning) and every submodule's mode is restored afterwards. The attack runs only on
    examples the clean pass got right; an example counts as robust when it is classified
    correctly both clean and after the attack, so ``robust_acc <= clean_acc``, as in
    RobustBench.

    A stochastic model (membrane noise on) is judged by single forwards: the clean accuracy
    is the accuracy of one stochastic forward per example, and so is the verdict on the
    adversarial example; only the attack's gradients are averaged over ``eot_samples``
    draws.

    Args:
        model: classifier taking [B, C, H, W] pixels in [0, 1] and returning logits.
        data: a ``Dataset`` or ``DataLoader`` yielding ``(x, y, ...)``, or an ``(x, y)`` pair.
        attack: ``"fgsm"``, ``"pgd"`` or ``"apgd"``.
        eps: L-inf radius on [0, 1] pixels.
        steps, step_size, restarts: PGD budget (FGSM ignores them); ``step_size=None`` is
            ``2.5 * eps / steps``.
        eot_samples: gradients averaged per step; None gives 8 when the model draws noise
            (in eval mode, after ``noise`` is applied) and 1 otherwise.
        noise: None keeps the model's own noise state; True / False forces the membrane
            noise on / off (via :func:`tgo.neurons.noise`) for the clean and attack passes.
        batch_size: examples per batch for a Dataset or tensor pair (a DataLoader keeps its
            own). EOT stacks the draws, so one forward holds ``batch_size * eot_samples``
            rows.
        max_examples: evaluate at most this many examples (the first ones).
        device: where to evaluate; None uses the model's device. A given device moves the
            model there (in place).
        generator: seeds PGD's random starts.
        surrogate: the attacker's surrogate gradient, swapped in around the attack only
            (None: training's).
        source: black-box transfer: craft the attack on this (independently trained)
            model and judge it on ``model``. Noise forcing applies to ``model`` only; with
            ``eot_samples=None`` the draws follow the source's stochasticity. The source is
            moved to ``model``'s device.
        source_label: how the result names the source (e.g. its checkpoint path).

    Returns:
        A :class:`RobustnessResult`.

    Example:
        >>> r = robustness(model, test_set, attack="pgd", eps=8 / 255, steps=10)  # doctest: +SKIP
        >>> r.robust_acc, r.as_metrics()["eval_eot_samples"]  # doctest: +SKIP
        (0.41, 8)
    """
    _check_run(batch_size, max_examples, eot_samples, noise)
    # Validate the attack settings before any forward pass.
    make_attack(attack, eps=eps, steps=steps, step_size=step_size, restarts=restarts,
                eot_samples=eot_samples or 1, surrogate=surrogate)
    if source is not None and not isinstance(source, nn.Module):
        raise ValueError(f"source: expected None or a torch.nn.Module, got "
                         f"{type(source).__name__}")
    device = _place(model, device, "robustness")
    if source is not None:
        source.to(device)
    attacked = model if source is None else source
    noise_ctx = contextlib.nullcontext() if noise is None else forced_noise(model, noise)
    with eval_mode(model), noise_ctx:
        noise_on = is_stochastic(model)
        if eot_samples is None:
            stochastic = noise_on if source is None else _stochastic_in_eval(source)
            eot_samples = DEFAULT_EOT_SAMPLES if stochastic else 1
        spec = make_attack(attack, eps=eps, steps=steps, step_size=step_size,
                           restarts=restarts, eot_samples=eot_samples, surrogate=surrogate)
        net = as_stateless(model)
        n = clean = robust = 0
        for x, y, correct in _clean_verdicts(net, data, batch_size, max_examples, device):
            n += len(y)
            clean += int(correct.sum())
            if correct.any():
                x_ok, y_ok = x[correct], y[correct]
                x_adv = spec.run(attacked, x_ok, y_ok, generator=generator)
                with torch.no_grad():
                    robust += int((net(x_adv).argmax(dim=1) == y_ok).sum())
    if n == 0:
        raise ValueError("data: expected at least one example, got none")
    return RobustnessResult(clean_acc=clean / n, robust_acc=robust / n, attack=spec.name,
                            eps=spec.eps, steps=spec.steps, step_size=spec.step_size,
                            restarts=spec.restarts, eot_samples=spec.eot_samples,
                            noise_on=noise_on, n_examples=n, surrogate=spec.surrogate,
                            source=None if source is None else source_label)
