"""Typed, frozen settings for training and evaluation.

One flat :class:`TrainConfig` holds every knob of a training run. The same object feeds
the CLI (``tgo train --margin-weight 0.5``), the Ray Tune ``param_space`` and the MLflow
params, so each name is spelled once. Strings become enums here, at the boundary, and
every bad value raises ``ValueError`` naming the field, what was expected and what came.

Example:
    >>> cfg = TrainConfig(dataset="digits", margin_weight=0.5, noise_scale=0.2)
    >>> cfg.replace(epochs=3).epochs
    3
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from typing import Any, Mapping, TypeVar

__all__ = [
    "Attack",
    "Dataset",
    "LambdaSchedule",
    "ModelName",
    "Optimizer",
    "Regime",
    "Surrogate",
    "TrainConfig",
    "as_enum",
]


class Dataset(str, enum.Enum):
    DIGITS = "digits"
    MNIST = "mnist"
    FASHION_MNIST = "fashion_mnist"
    CIFAR10 = "cifar10"
    CIFAR100 = "cifar100"


class ModelName(str, enum.Enum):
    DIGITS_CNN = "digits_cnn"
    MNIST_CNN = "mnist_cnn"
    VGG11 = "vgg11"
    WRN16 = "wrn16"


class Regime(str, enum.Enum):
    STANDARD = "standard"
    ADVERSARIAL = "adversarial"


class Attack(str, enum.Enum):
    FGSM = "fgsm"
    PGD = "pgd"
    APGD = "apgd"


class Surrogate(str, enum.Enum):
    SIGMOID = "sigmoid"
    ATAN = "atan"
    TRIANGLE = "triangle"
    ERF = "erf"


class Optimizer(str, enum.Enum):
    SGD = "sgd"
    ADAM = "adam"


class LambdaSchedule(str, enum.Enum):
    COSINE = "cosine"
    CONSTANT = "constant"


E = TypeVar("E", bound=enum.Enum)


def as_enum(cls: type[E], value: Any, field: str) -> E:
    """Convert ``value`` to enum ``cls`` or raise a ValueError naming ``field`` and the choices."""
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in cls)
        raise ValueError(f"{field}: expected one of {choices}, got {value!r}") from None


def _check(cond: bool, field: str, expected: str, got: Any) -> None:
    if not cond:
        raise ValueError(f"{field}: expected {expected}, got {got!r}")


_ENUM_FIELDS = {
    "dataset": Dataset,
    "regime": Regime,
    "attack_train": Attack,
    "optimizer": Optimizer,
    "lambda_schedule": LambdaSchedule,
    "val_attack": Attack,
}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs. Potentials and thresholds are in units of V_th = 1.

    Attributes:
        dataset, model: names (see :class:`Dataset`, :class:`ModelName`).
        data_dir: folder of torchvision data sets; ``download`` fetches them when missing.
        timesteps: T, simulation steps per input (direct encoding, input repeated T times).
        epochs, batch_size: training length.
        optimizer, lr, momentum, weight_decay: optimiser; the LR follows a cosine decay.
        regime: ``standard`` (clean inputs) or ``adversarial`` (train on ``attack_train``
            examples at L-inf ``eps_train`` on [0, 1] pixels, PGD with ``pgd_steps_train``;
            eps_train 0 trains on clean inputs, so a sweep can search eps_train from 0).
        margin_weight: lambda_max, the weight of the threshold-guard loss (0 disables it).
        margin: delta, half-width of the guarded band around V_th (membrane-potential units).
        squared_hinge: square the hinge max(0, delta - |H - V_th|).
        lambda_schedule, ramp_fraction: cosine ramp of lambda from 0 to lambda_max over
            this fraction of training, or constant.
        noise_scale: sigma of the Gaussian membrane noise (0 gives plain LIF neurons).
        surrogate: surrogate-gradient name; None picks ``erf`` (a Gaussian density of std
            sqrt(sigma^2 + S0^2), S0 = 1/sqrt(2 pi): never narrower than at sigma = 0) when
            sigma > 0 and spikingjelly's ``sigmoid`` (alpha 4) when sigma = 0.
        noise_at_eval: keep the noise on in eval mode (the paper's models are stochastic).
        tau, v_threshold, v_reset: LIF constants; ``v_reset=None`` is a soft reset.
        seed: seeds the split, the initialisation, the batches and the neuron noise.
        val_fraction, test_fraction: shares of the data held out (test only where the data
            set has no official test split).
        val_attack, val_eps, val_steps, val_eot_samples, val_subset: the cheap per-epoch
            attack on a fixed validation subset that drives pruning.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda[:i]``.
        amp: mixed precision on CUDA (ignored on the CPU).
        num_workers: DataLoader workers.
    """

    dataset: Dataset | str = Dataset.DIGITS
    model: ModelName | str | None = None
    data_dir: str = "data"
    download: bool = False
    timesteps: int = 4
    epochs: int = 20
    batch_size: int = 64
    optimizer: Optimizer | str = Optimizer.ADAM
    lr: float = 2e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    regime: Regime | str = Regime.STANDARD
    attack_train: Attack | str = Attack.PGD
    eps_train: float = 0.05
    pgd_steps_train: int = 2
    margin_weight: float = 0.5
    margin: float = 0.5
    squared_hinge: bool = False
    lambda_schedule: LambdaSchedule | str = LambdaSchedule.COSINE
    ramp_fraction: float = 0.5
    noise_scale: float = 0.2
    surrogate: Surrogate | str | None = None
    noise_at_eval: bool = True
    tau: float = 2.0
    v_threshold: float = 1.0
    v_reset: float | None = 0.0
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    val_attack: Attack | str = Attack.PGD
    val_eps: float = 0.1
    val_steps: int = 5
    val_eot_samples: int = 2
    val_subset: int = 256
    device: str = "auto"
    amp: bool = True
    num_workers: int = 0

    def __post_init__(self) -> None:
        for name, cls in _ENUM_FIELDS.items():
            object.__setattr__(self, name, as_enum(cls, getattr(self, name), name))
        if self.model is None:
            object.__setattr__(self, "model", _DEFAULT_MODEL[self.dataset])
        object.__setattr__(self, "model", as_enum(ModelName, self.model, "model"))
        if self.surrogate is not None:
            object.__setattr__(self, "surrogate", as_enum(Surrogate, self.surrogate, "surrogate"))
        # Ray and YAML may hand ints for floats: normalise so tau=2 does not trip spikingjelly.
        for name in ("lr", "momentum", "weight_decay", "eps_train", "margin_weight", "margin",
                     "ramp_fraction", "noise_scale", "tau", "v_threshold", "val_fraction",
                     "test_fraction", "val_eps"):
            value = getattr(self, name)
            _check(isinstance(value, (int, float)) and not isinstance(value, bool)
                   and math.isfinite(value), name, "a finite number", value)
            object.__setattr__(self, name, float(value))
        for name in ("timesteps", "epochs", "batch_size", "pgd_steps_train", "val_steps",
                     "val_eot_samples", "val_subset", "seed", "num_workers"):
            value = getattr(self, name)
            _check(isinstance(value, int) and not isinstance(value, bool), name, "an integer", value)
        _check(self.timesteps >= 1, "timesteps", "T >= 1", self.timesteps)
        _check(self.epochs >= 1, "epochs", ">= 1", self.epochs)
        _check(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)
        _check(self.lr > 0, "lr", "> 0", self.lr)
        _check(0 <= self.momentum < 1, "momentum", "in [0, 1)", self.momentum)
        _check(self.weight_decay >= 0, "weight_decay", ">= 0", self.weight_decay)
        _check(0 <= self.eps_train <= 1, "eps_train", "in [0, 1]", self.eps_train)
        _check(self.pgd_steps_train >= 1, "pgd_steps_train", ">= 1", self.pgd_steps_train)
        _check(self.margin_weight >= 0, "margin_weight", "lambda >= 0", self.margin_weight)
        _check(self.margin > 0, "margin", "delta > 0", self.margin)
        _check(0 < self.ramp_fraction <= 1, "ramp_fraction", "in (0, 1]", self.ramp_fraction)
        _check(self.noise_scale >= 0, "noise_scale", "sigma >= 0", self.noise_scale)
        _check(self.tau > 1, "tau", "> 1", self.tau)
        _check(self.v_threshold > 0, "v_threshold", "> 0", self.v_threshold)
        if self.v_reset is not None:
            _check(isinstance(self.v_reset, (int, float)) and not isinstance(self.v_reset, bool)
                   and math.isfinite(self.v_reset), "v_reset", "a finite number or None",
                   self.v_reset)
            object.__setattr__(self, "v_reset", float(self.v_reset))
        _check(0 < self.val_fraction < 1, "val_fraction", "in (0, 1)", self.val_fraction)
        _check(0 < self.test_fraction < 1, "test_fraction", "in (0, 1)", self.test_fraction)
        _check(self.val_fraction + self.test_fraction < 1, "val_fraction + test_fraction",
               "< 1", self.val_fraction + self.test_fraction)
        _check(0 <= self.val_eps <= 1, "val_eps", "in [0, 1]", self.val_eps)
        _check(self.val_steps >= 1, "val_steps", ">= 1", self.val_steps)
        _check(self.val_eot_samples >= 1, "val_eot_samples", ">= 1", self.val_eot_samples)
        _check(self.val_subset >= 1, "val_subset", ">= 1", self.val_subset)
        _check(self.num_workers >= 0, "num_workers", ">= 0", self.num_workers)
        # numpy seeds the split: it takes 0..2**32 - 1 (torch takes more).
        _check(0 <= self.seed < 2**32, "seed", "in [0, 2**32 - 1]", self.seed)
        _check(isinstance(self.device, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?",
                                                             self.device) is not None,
               "device", "'auto', 'cpu' or 'cuda[:i]'", self.device)

    @property
    def surrogate_name(self) -> Surrogate:
        """The surrogate actually used: the configured one, or the default for sigma."""
        if self.surrogate is not None:
            return self.surrogate
        return Surrogate.ERF if self.noise_scale > 0 else Surrogate.SIGMOID

    @property
    def uses_tgo(self) -> bool:
        return self.margin_weight > 0 or self.noise_scale > 0

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (enums as their string values)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.value if isinstance(value, enum.Enum) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        """Build from a mapping; an unknown key is an error naming it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**dict(data))


_DEFAULT_MODEL = {
    Dataset.DIGITS: ModelName.DIGITS_CNN,
    Dataset.MNIST: ModelName.MNIST_CNN,
    Dataset.FASHION_MNIST: ModelName.MNIST_CNN,
    Dataset.CIFAR10: ModelName.VGG11,
    Dataset.CIFAR100: ModelName.VGG11,
}
