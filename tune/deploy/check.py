"""Whether a model reproduces its numbers: clean accuracy measured on the rebuilt test split.

The models are stochastic when ``noise_scale > 0`` and ``noise_at_eval`` (one noisy forward
per example), so the number checked is the clean test accuracy *with the membrane noise
forced off*, which is deterministic: it is measured on the logged model at pick time (tag
``clean_acc_noise_off``) and again on the registered model by :func:`check_deployment`; the
two must be equal. The sweep's own ``clean_acc`` (noise as trained, on ``eval_n`` test
examples) is compared too, within the spread of two independent noisy evaluations (4
standard deviations, at most ``4 / sqrt(2 n)``; exact for a model without noise).

Example:
    >>> check = check_deployment("models:/digits-snn@deploy", uri, config,
    ...                          expected_noise_off=0.93)         # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any

from tgo.config import TrainConfig
from tune.deploy.registry import load_model

__all__ = ["DeployCheck", "check_deployment", "measure_clean_accuracy"]


def measure_clean_accuracy(model: Any, config: TrainConfig, *, noise: bool | None = False,
                           max_examples: int | None = None) -> tuple[float, int]:
    """Clean accuracy on ``config``'s test split (rebuilt from its data set and seed).

    Args:
        noise: False forces the membrane noise off (deterministic), True on, None keeps
            the model's own setting (``noise_at_eval``).
        max_examples: the first examples only (as the sweep's ``eval_n``).

    Returns:
        (accuracy, number of examples).
    """
    import torch
    from torch.utils.data import Subset

    from tgo import data
    from tgo.neurons import noise as forced_noise
    from tgo.train import accuracy

    splits = data.load(config.dataset, seed=config.seed, data_dir=config.data_dir,
                       download=False, val_fraction=config.val_fraction,
                       test_fraction=config.test_fraction)
    test = splits.test
    if max_examples is not None and max_examples < len(test):
        test = Subset(test, range(max_examples))
    model = model.to("cpu").eval()
    context = contextlib.nullcontext() if noise is None else forced_noise(model, noise)
    with context:
        acc = accuracy(model, test, torch.device("cpu"))
    return acc, len(test)


@dataclasses.dataclass(frozen=True)
class DeployCheck:
    """Whether a deployed model reproduces its numbers on the rebuilt test split.

    ``clean_acc_noise_off`` must equal ``expected_noise_off`` (both deterministic);
    ``clean_acc_as_evaluated`` (noise as in the sweep, ``n_evaluated`` examples) must lie
    within ``tolerance`` of the sweep's ``reported_clean_acc``.
    """

    model_uri: str
    clean_acc_noise_off: float
    expected_noise_off: float | None
    n_test: int
    clean_acc_as_evaluated: float
    reported_clean_acc: float | None
    n_evaluated: int
    tolerance: float

    @property
    def ok(self) -> bool:
        exact = self.expected_noise_off is None or self.clean_acc_noise_off == \
            self.expected_noise_off
        close = self.reported_clean_acc is None or abs(
            self.clean_acc_as_evaluated - self.reported_clean_acc) <= self.tolerance + 1e-12
        return exact and close

    def describe(self) -> str:
        first = (f"{self.model_uri}: clean accuracy {self.clean_acc_noise_off:.4f} on "
                 f"{self.n_test} test examples with noise off")
        if self.expected_noise_off is not None:
            same = self.clean_acc_noise_off == self.expected_noise_off
            first += (f" (at pick time: {self.expected_noise_off:.4f}, "
                      f"{'same' if same else 'DIFFERENT'})")
        lines = [first]
        if self.reported_clean_acc is not None:
            diff = abs(self.clean_acc_as_evaluated - self.reported_clean_acc)
            lines.append(f"{self.clean_acc_as_evaluated:.4f} with noise as evaluated on "
                         f"{self.n_evaluated} examples vs {self.reported_clean_acc:.4f} "
                         f"reported by the sweep (|diff| {diff:.4f}, allowed "
                         f"{self.tolerance:.4f})")
        return "\n".join(lines)


def _tolerance(config: TrainConfig, n: int) -> float:
    """Spread allowed between two evaluations of ``n`` examples: 0 without noise, else four
    standard deviations of the difference of two independent noisy passes (per-example
    variance at most 1/4, so sd <= sqrt(2 / (4 n)))."""
    if config.noise_scale == 0 or not config.noise_at_eval:
        return 0.0
    return 4.0 * math.sqrt(1.0 / (2.0 * max(n, 1)))


def check_deployment(model_uri: str, tracking_uri: str, config: TrainConfig, *,
                     expected_noise_off: float | None = None,
                     reported_clean_acc: float | None = None,
                     eval_n: int | None = None, model: Any = None) -> DeployCheck:
    """Load ``model_uri`` (e.g. ``models:/NAME@deploy``) and re-measure its clean accuracy.

    Example:
        >>> check = check_deployment("models:/digits-snn@deploy", uri, config,
        ...                          expected_noise_off=0.93)         # doctest: +SKIP
        >>> check.ok                                                  # doctest: +SKIP
        True
    """
    model = load_model(model_uri, tracking_uri) if model is None else model
    off, n_test = measure_clean_accuracy(model, config, noise=False)
    if config.noise_scale == 0 or not config.noise_at_eval:
        as_eval, n_eval = measure_clean_accuracy(model, config, noise=False,
                                                 max_examples=eval_n)
    else:
        as_eval, n_eval = measure_clean_accuracy(model, config, noise=None, max_examples=eval_n)
    return DeployCheck(model_uri, off, expected_noise_off, n_test, as_eval, reported_clean_acc,
                       n_eval, _tolerance(config, n_eval))
