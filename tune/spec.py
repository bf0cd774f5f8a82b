"""The sweep specification: a YAML file validated into a frozen typed model before anything runs.

A spec fixes the training settings (``dataset``, ``model``, ``epochs``, ``regime`` and any
other :class:`tgo.config.TrainConfig` field under ``train``), the search ``space``, the
``objectives`` and ``constraints``, and how the sweep runs (``sampler``, ``pruner``,
``num_samples``, ``resources``, final ``evaluation``, ``mlflow``, ``storage_path``).
Every problem is reported at once, each as ``field.path: expected ..., got ...``, in one
:class:`SpecError`; pydantic's own errors never leak out.

Usage:
    >>> spec = load_spec("examples/digits-quick.yaml")
    >>> spec.directions
    ['maximize', 'maximize']
    >>> cfg = spec.train_config({"margin_weight": 0.3, "margin": 0.5,
    ...                          "noise_scale": 0.1, "timesteps": 4})
    >>> cfg.epochs, cfg.margin_weight
    (6, 0.3)
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import os
import re
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Mapping, Sequence, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Field, Strict, StringConstraints,
                      ValidationError, field_validator, model_validator)

from tgo.errors import TgoError
from tgo.config import Attack, Dataset, ModelName, Regime, TrainConfig
from tune.objectives import Constraint, Constraints, Direction, Metric

#: The spec as a sweep saved it beside its Ray results (``<storage_path>/<name>/``).
SPEC_FILE = "sweep_spec.yaml"

__all__ = [
    "SPEC_FILE",
    "SEARCHABLE",
    "Choice",
    "EvaluationSpec",
    "IntRange",
    "LogUniform",
    "MlflowSpec",
    "PrunerName",
    "PrunerSpec",
    "ResourcesSpec",
    "SamplerName",
    "SamplerSpec",
    "SpecError",
    "SweepSpec",
    "Uniform",
    "load_spec",
]

#: TrainConfig fields a spec may search over (every other field is fixed).
SEARCHABLE = ("margin_weight", "margin", "noise_scale", "timesteps", "lr", "eps_train")
_INT_FIELDS = frozenset({"timesteps"})
_TOP_LEVEL = ("dataset", "model", "epochs", "regime")  # TrainConfig fields set at the top level
_TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
# TrainConfig checks its numbers and enums; plain str/bool fields are checked here.
_PLAIN_TYPES = {f.name: {"str": str, "bool": bool}[str(f.type)]
                for f in dataclasses.fields(TrainConfig) if str(f.type) in ("str", "bool")}

Int = Annotated[int, Strict()]  # an integer, not a bool, float or string
Num = Annotated[float, Strict()]  # an int or float, not a bool or string


class SpecError(TgoError, ValueError):
    """An invalid sweep spec. ``problems`` holds one ``field.path: what was expected, got
    what`` line per problem; ``source`` is the file it came from, when there was one."""

    def __init__(self, problems: Sequence[str], source: str | None = None,
                 title: str = "invalid sweep spec") -> None:
        self.problems = tuple(problems)
        self.source = source
        self.title = title
        head = f"{source}: {title}" if source else title
        if len(self.problems) == 1:
            message = f"{head}: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"{head} ({len(self.problems)} problems):\n{lines}"
        super().__init__(message)

    def __reduce__(self) -> tuple:
        return SpecError, (self.problems, self.source, self.title)


class _Problems(ValueError):
    """Raised inside validators: problems as (path relative to the validated object, text)."""

    def __init__(self, problems: Sequence[tuple[tuple, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{_dotted(p)}: {m}" for p, m in self.problems))


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _show(value: Any) -> str:
    text = repr(value.value if isinstance(value, enum.Enum) else value)
    return text if len(text) <= 80 else text[:77] + "..."


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _dotted(loc: Sequence[Any]) -> str:
    """``("space", "lr", "low")`` -> ``space.lr.low``; indices and odd keys in brackets."""
    out = ""
    for part in loc:
        if isinstance(part, str) and _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part}]" if isinstance(part, int) else f"[{_show(part)}]"
    return out


# Beyond 64 bits an integer breaks the C code it reaches (torch, numpy, SQL columns).
_INT64 = (-2**63, 2**63 - 1)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _huge_ints(node: Any, loc: tuple = ()) -> list[str]:
    """``path: expected ...`` for every integer in ``node`` that does not fit in 64 bits."""
    if isinstance(node, int) and not isinstance(node, bool) and \
            not _INT64[0] <= node <= _INT64[1]:
        return [f"{_dotted(loc) or 'spec'}: expected an integer that fits in 64 bits, "
                f"got {_show(node)}"]
    if isinstance(node, Mapping):
        return [p for k, v in node.items() for p in _huge_ints(v, loc + (k,))]
    if isinstance(node, (list, tuple)):
        return [p for i, v in enumerate(node) for p in _huge_ints(v, loc + (i,))]
    return []


#: MLflow store schemes a spec may name (``postgresql+psycopg2`` counts as postgresql).
_TRACKING_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks",
                     "databricks-uc")


def _tracking_uri_problem(uri: str) -> str | None:
    """Why ``uri`` cannot be a sweep's tracking URI (None when it can). A URI that holds a
    credential is refused: the spec is logged to MLflow and saved with the Ray results."""
    from tune.redact import has_credentials, redact_uri

    shown = _show(redact_uri(uri))
    if _CONTROL.search(uri) or uri != uri.strip():
        return f"expected a URI without control characters or surrounding spaces, got {shown}"
    if has_credentials(uri):
        return ("expected no credentials in the URI (the spec is logged and saved with the "
                "results); set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or "
                "MLFLOW_TRACKING_TOKEN (a database: its driver's variables, e.g. PGPASSWORD) "
                f"in the environment instead, got {shown}")
    if uri in ("databricks", "databricks-uc"):  # the default Databricks profile
        return None
    try:
        parts = urllib.parse.urlsplit(uri)
        ok = parts.scheme.split("+")[0] in _TRACKING_SCHEMES and "://" in uri and \
            (bool(parts.hostname) or not parts.scheme.startswith("http"))
    except ValueError:
        ok = False
    if not ok:
        return (f"expected an MLflow tracking URI such as sqlite:////abs/path/mlflow.db or "
                f"http://host:5000 (schemes: {', '.join(_TRACKING_SCHEMES)}; MLflow 3's file "
                f"store is in maintenance mode), got {shown}")
    return None


# --------------------------------------------------------------------------- distributions


class LogUniform(_Frozen):
    """Log-uniform on [low, high] with 0 < low < high (for scales such as ``lr``)."""

    type: Literal["loguniform"] = "loguniform"
    low: Num
    high: Num

    @model_validator(mode="after")
    def _bounds(self) -> "LogUniform":
        problems = []
        if self.low <= 0:
            problems.append((("low",), f"expected > 0 (log scale), got {self.low!r}"))
        if self.high <= self.low:
            problems.append((("high",), f"expected > low ({self.low!r}), got {self.high!r}"))
        if problems:
            raise _Problems(problems)
        return self

    def endpoints(self) -> list[tuple[tuple, Any]]:
        return [(("low",), self.low), (("high",), self.high)]

    def to_optuna(self) -> Any:
        from optuna.distributions import FloatDistribution
        return FloatDistribution(self.low, self.high, log=True)

    def __str__(self) -> str:
        return f"loguniform({self.low!r}, {self.high!r})"


class Uniform(_Frozen):
    """Uniform on [low, high] with low < high."""

    type: Literal["uniform"] = "uniform"
    low: Num
    high: Num

    @model_validator(mode="after")
    def _bounds(self) -> "Uniform":
        if self.high <= self.low:
            raise _Problems([(("high",), f"expected > low ({self.low!r}), got {self.high!r}")])
        return self

    def endpoints(self) -> list[tuple[tuple, Any]]:
        return [(("low",), self.low), (("high",), self.high)]

    def to_optuna(self) -> Any:
        from optuna.distributions import FloatDistribution
        return FloatDistribution(self.low, self.high)

    def __str__(self) -> str:
        return f"uniform({self.low!r}, {self.high!r})"


class IntRange(_Frozen):
    """Integers low, low + step, ..., high (log-spaced sampling when ``log``, then step 1)."""

    type: Literal["int"] = "int"
    low: Int
    high: Int
    step: Int = 1
    log: Annotated[bool, Strict()] = False

    @model_validator(mode="after")
    def _bounds(self) -> "IntRange":
        problems = []
        if self.high <= self.low:
            problems.append((("high",), f"expected > low ({self.low}), got {self.high}"))
        if self.step < 1:
            problems.append((("step",), f"expected >= 1, got {self.step}"))
        elif self.high > self.low and (self.high - self.low) % self.step:
            problems.append((("high",), f"expected low + k * step ({self.low} + k * "
                                        f"{self.step}), got {self.high}"))
        if self.log and self.low < 1:
            problems.append((("low",), f"expected >= 1 with log: true, got {self.low}"))
        if self.log and self.step != 1:
            problems.append((("step",), f"expected 1 with log: true, got {self.step}"))
        if problems:
            raise _Problems(problems)
        return self

    def endpoints(self) -> list[tuple[tuple, Any]]:
        return [(("low",), self.low), (("high",), self.high)]

    def to_optuna(self) -> Any:
        from optuna.distributions import IntDistribution
        return IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def __str__(self) -> str:
        return f"int({self.low}, {self.high}, step={self.step}, log={self.log})"


class Choice(_Frozen):
    """One of a fixed list of distinct values (use it to include exact values such as 0)."""

    type: Literal["choice"] = "choice"
    values: Annotated[list[Any], Field(min_length=1)]

    @field_validator("values")
    @classmethod
    def _scalars(cls, values: list[Any]) -> list[Any]:
        problems = [((i,), f"expected a number, string, bool or null, got {_show(v)}")
                    for i, v in enumerate(values)
                    if v is not None and not isinstance(v, (bool, int, float, str))]
        if not problems and len(set(map(repr, values))) < len(values):
            problems.append(((), f"expected distinct values, got {_show(values)}"))
        if problems:
            raise _Problems(problems)
        return values

    def endpoints(self) -> list[tuple[tuple, Any]]:
        return [(("values", i), v) for i, v in enumerate(self.values)]

    def to_optuna(self) -> Any:
        from optuna.distributions import CategoricalDistribution
        return CategoricalDistribution(self.values)

    def __str__(self) -> str:
        return f"choice{json.dumps(self.values)}"


Distribution = Annotated[Union[LogUniform, Uniform, IntRange, Choice], Field(discriminator="type")]
_DIST_BY_TAG: dict[str, type[_Frozen]] = {"loguniform": LogUniform, "uniform": Uniform,
                                          "int": IntRange, "choice": Choice}
_FLOAT_DISTS = ("uniform", "loguniform")


# --------------------------------------------------------------------------- run settings


class SamplerName(str, enum.Enum):
    NSGA2 = "nsga2"
    TPE = "tpe"
    RANDOM = "random"


class SamplerSpec(_Frozen):
    """Optuna sampler. ``population_size`` (NSGA-II only; >= 2) defaults to about a quarter
    of ``num_samples`` (at most 50), so a small sweep still runs several generations."""

    type: SamplerName = SamplerName.NSGA2
    seed: Annotated[int, Strict(), Field(ge=0, le=2**32 - 1)] = 0  # numpy's seed range
    population_size: Annotated[int, Strict(), Field(ge=2)] | None = None


class PrunerName(str, enum.Enum):
    MO_ASHA = "mo_asha"
    MEDIAN = "median"
    PERCENTILE = "percentile"
    SUCCESSIVE_HALVING = "successive_halving"
    HYPERBAND = "hyperband"
    NONE = "none"


_SINGLE_METRIC = frozenset({PrunerName.MEDIAN, PrunerName.PERCENTILE,
                            PrunerName.SUCCESSIVE_HALVING, PrunerName.HYPERBAND})
_VAL_METRICS = tuple(m.val_key for m in Metric)


class PrunerSpec(_Frozen):
    """Early stopping on per-epoch validation metrics (implemented in tune/pruning.py).

    Attributes:
        type: None picks ``mo_asha`` for >= 2 objectives, else ``median``.
        metric, mode: the per-epoch metric of a single-metric pruner (``val_<objective>``)
            and its direction; None picks the first objective and its direction.
        eta: reduction factor of successive halving / ASHA (>= 2).
        grace_epochs: epochs every trial runs before it can be stopped (>= 1).
        percentile: the percentile pruner's cut, in [0, 100].
        n_warmup_epochs: epochs before the median/percentile pruner looks at a trial.
    """

    type: PrunerName | None = None
    metric: str | None = None
    mode: Direction | None = None
    eta: Annotated[int, Strict(), Field(ge=2)] = 3
    grace_epochs: Annotated[int, Strict(), Field(ge=1)] = 1
    percentile: Annotated[float, Strict(), Field(ge=0, le=100)] = 25.0
    n_warmup_epochs: Annotated[int, Strict(), Field(ge=0)] = 0

    @field_validator("metric")
    @classmethod
    def _val_metric(cls, metric: str | None) -> str | None:
        if metric is not None and metric not in _VAL_METRICS:
            raise _Problems([((), f"expected a per-epoch validation metric in "
                                  f"{', '.join(map(repr, _VAL_METRICS))}, got {metric!r}")])
        return metric


class ResourcesSpec(_Frozen):
    """Per-trial Ray resources; fractions below 1 share a device (``gpu: 0.25``)."""

    cpu: Annotated[float, Strict(), Field(gt=0)] = 1.0
    gpu: Annotated[float, Strict(), Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _whole_above_one(self) -> "ResourcesSpec":
        problems = [((name,), f"expected a fraction below 1 or a whole number, got {value!r}")
                    for name, value in (("cpu", self.cpu), ("gpu", self.gpu))
                    if value > 1 and value != int(value)]
        if problems:
            raise _Problems(problems)
        return self


def _attack_name(value: Any) -> str | None:
    """The plain string of an attack name as given (None for anything else)."""
    if isinstance(value, Attack):
        return value.value
    return value if isinstance(value, str) else None


class EvaluationSpec(_Frozen):
    """The final evaluation on the test split that produces the objectives.

    Attributes:
        attacks: the attack set; ``robust_acc`` is the per-example worst case over it (an
            example counts only if it survives every attack), so masking one attack's
            gradient cannot buy a place on the front. Default: PGD and APGD-CE.
        attack: the single-attack form of older specs; given alone it means
            ``attacks: [attack]``. None otherwise.
        eps, steps, step_size, restarts: L-inf budget on [0, 1] pixels shared by the
            attacks; ``step_size`` None lets each attack pick its default (APGD always
            adapts its own).
        eot_samples: EOT noise draws per gradient; None picks 8 for a stochastic model
            (noise_scale > 0 and noise on at eval), else 1.
        max_examples: cap on test examples (None: the whole test split).

    Example:
        >>> [a.value for a in EvaluationSpec().attacks]
        ['pgd', 'apgd']
        >>> [a.value for a in EvaluationSpec(attack="fgsm").attacks]
        ['fgsm']
    """

    attacks: tuple[Attack, ...] = (Attack.PGD, Attack.APGD)
    attack: Attack | None = None
    eps: Annotated[float, Strict(), Field(ge=0, le=1)] = 0.1
    steps: Annotated[int, Strict(), Field(ge=1)] = 20
    step_size: Annotated[float, Strict(), Field(gt=0)] | None = None
    restarts: Annotated[int, Strict(), Field(ge=1)] = 1
    eot_samples: Annotated[int, Strict(), Field(ge=1)] | None = None
    max_examples: Annotated[int, Strict(), Field(ge=1)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _single_attack(cls, data: Any) -> Any:
        """``attack: X`` alone stands for ``attacks: [X]`` (when X is a valid name; a bad
        one is reported once, at ``evaluation.attack``)."""
        if isinstance(data, Mapping) and "attacks" not in data and "attack" in data:
            if _attack_name(data["attack"]) in {a.value for a in Attack}:
                return {**data, "attacks": [data["attack"]]}
        return data

    @field_validator("attacks", mode="before")
    @classmethod
    def _attack_list(cls, attacks: Any) -> Any:
        names = ", ".join(repr(a.value) for a in Attack)
        if not isinstance(attacks, (list, tuple)):
            raise _Problems([((), f"expected a list of attack names ({names}), "
                                  f"got {_show(attacks)}")])
        if not attacks:
            raise _Problems([((), f"expected at least 1 attack ({names}), got []")])
        given = [_attack_name(a) for a in attacks]
        if None not in given and len(set(given)) < len(given):
            raise _Problems([((), f"expected distinct attacks, got {_show(list(attacks))}")])
        return attacks

    @model_validator(mode="after")
    def _one_attack_form(self) -> "EvaluationSpec":
        if self.attack is not None and self.attacks != (self.attack,):
            raise _Problems([(("attack",), f"expected attack only without attacks (attacks "
                                           f"{[a.value for a in self.attacks]!r} lists the "
                                           f"whole set), got {self.attack.value!r}")])
        return self


class MlflowSpec(_Frozen):
    """Where trials are logged. None values are filled in when the spec is validated:
    ``tracking_uri`` with ``$MLFLOW_TRACKING_URI`` or else ``sqlite:///<cwd>/mlflow.db``,
    ``experiment`` with the spec name."""

    tracking_uri: Annotated[str, StringConstraints(min_length=1)] | None = None
    experiment: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None

    @field_validator("tracking_uri")
    @classmethod
    def _check_uri(cls, uri: str | None) -> str | None:
        problem = None if uri is None else _tracking_uri_problem(uri)
        if problem:
            raise _Problems([((), problem)])
        return uri

    @field_validator("experiment")
    @classmethod
    def _check_experiment(cls, name: str | None) -> str | None:
        # MLflow search filters quote the name; a quote or backslash would break them.
        if name is not None and (_CONTROL.search(name) or "'" in name or "\\" in name):
            raise _Problems([((), f"expected no quotes, backslashes or control characters, "
                                  f"got {_show(name)}")])
        return name


# --------------------------------------------------------------------------- the spec


def _default_objectives() -> dict[Metric, Direction]:
    return {Metric.CLEAN_ACC: Direction.MAX, Metric.ROBUST_ACC: Direction.MAX}


class SweepSpec(_Frozen):
    """A whole sweep, validated. Build it with :func:`load_spec` or :meth:`from_dict`.

    ``objectives`` is an ordered mapping of 1 to 4 distinct metrics to ``max``/``min``;
    its order is the order of the study's directions. See examples/digits-quick.yaml for
    every field with a comment.

    Example:
        >>> spec = SweepSpec.from_dict({"name": "t", "dataset": "digits", "epochs": 2,
        ...     "num_samples": 4, "space": {"margin": {"type": "uniform", "low": 0.2, "high": 1}}})
        >>> spec.pruner.type.value, spec.model.value, spec.objective_names
        ('mo_asha', 'digits_cnn', ('clean_acc', 'robust_acc'))
    """

    name: Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$")]
    dataset: Dataset
    model: ModelName | None = None
    epochs: Int
    regime: Regime = Regime.STANDARD
    train: dict[str, Any] = Field(default_factory=dict)
    space: Annotated[dict[str, Distribution], Field(min_length=1)]
    objectives: Annotated[dict[Metric, Direction], Field(min_length=1)] = Field(
        default_factory=_default_objectives)
    constraints: tuple[Constraint, ...] = ()
    sampler: SamplerSpec = SamplerSpec()
    pruner: PrunerSpec = PrunerSpec()
    num_samples: Annotated[int, Strict(), Field(ge=1)]
    max_concurrent: Annotated[int, Strict(), Field(ge=1)] = 2
    resources: ResourcesSpec = ResourcesSpec()
    max_failures: Annotated[int, Strict(), Field(ge=0)] = 2
    evaluation: EvaluationSpec = EvaluationSpec()
    mlflow: MlflowSpec = MlflowSpec()
    storage_path: Annotated[str, StringConstraints(min_length=1)] = "runs"

    def __init__(self, /, **data: Any) -> None:
        huge = _huge_ints(data)
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise SpecError(huge + [p for p in _problems_of(exc) if p not in huge]) from None
        if huge:
            raise SpecError(huge)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | None = None) -> "SweepSpec":
        """Validate a plain mapping (as read from YAML); raise :class:`SpecError`."""
        if not isinstance(data, Mapping):
            raise SpecError([f"expected a mapping of spec fields, got {type(data).__name__}"],
                            source)
        odd = [f"{_show(k)}: expected a string key, got {type(k).__name__}"
               for k in data if not isinstance(k, str)]
        if odd:
            raise SpecError(odd, source)
        try:
            return cls(**data)
        except SpecError as exc:
            raise SpecError(exc.problems, source) from None

    # ---- field checks

    @field_validator("train", mode="before")
    @classmethod
    def _check_train(cls, train: Any) -> Any:
        if not isinstance(train, Mapping):
            return train  # pydantic reports the type
        problems = []
        for key, value in train.items():
            if key in _TOP_LEVEL:
                problems.append(((key,), f"expected at the top level of the spec "
                                         f"('{key}: ...'), got it under train"))
            elif key not in _TRAIN_FIELDS:
                problems.append(((key,), "expected a TrainConfig field "
                                         f"({', '.join(_TRAIN_FIELDS)}), got {_show(key)}"))
            elif value is not None and not isinstance(value, (bool, int, float, str)):
                problems.append(((key,), f"expected a number, string, bool or null, "
                                         f"got {_show(value)}"))
            elif key in _PLAIN_TYPES and not isinstance(value, _PLAIN_TYPES[key]):
                kind = "true or false" if _PLAIN_TYPES[key] is bool else "a string"
                problems.append(((key,), f"expected {kind}, got {_show(value)}"))
            elif isinstance(value, str) and _CONTROL.search(value):
                problems.append(((key,), f"expected no control characters, got {_show(value)}"))
        if problems:
            raise _Problems(problems)
        return train

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        # The name is a folder under storage_path, an MLflow experiment and a CLI argument.
        if len(name) > 100:
            raise _Problems([((), f"expected at most 100 characters, got {len(name)}")])
        if name[0] in ".-":
            raise _Problems([((), f"expected a letter, digit or '_' first (the name is a "
                                  f"folder and a command-line argument), got {_show(name)}")])
        return name

    @field_validator("storage_path")
    @classmethod
    def _check_storage(cls, path: str) -> str:
        problem = None
        if _CONTROL.search(path) or not path.strip():
            problem = f"expected a folder path without control characters, got {_show(path)}"
        elif "://" not in path:
            try:
                parts = Path(path).expanduser().parts
            except RuntimeError:  # ~user of an unknown user
                parts, problem = (), f"expected a folder of a known user, got {_show(path)}"
            if any(len(part.encode()) > 255 for part in parts):
                problem = f"expected folder names of at most 255 bytes, got {_show(path)}"
        if problem:
            raise _Problems([((), problem)])
        return path

    @field_validator("space", mode="wrap")
    @classmethod
    def _check_space(cls, space: Any, handler: Callable[[Any], Any]) -> Any:
        problems: list[tuple[tuple, str]] = []
        if isinstance(space, Mapping):  # report names and distributions in one go
            problems += [((name,), f"expected a searchable field ({', '.join(SEARCHABLE)})"
                                        f", got {_show(name)}")
                         for name in space if name not in SEARCHABLE]
            problems += [((name, "type"), f"expected 'int' or 'choice' for an integer field, "
                                          f"got {dist['type']!r}")
                         for name, dist in space.items() if name in _INT_FIELDS
                         and isinstance(dist, Mapping) and dist.get("type") in _FLOAT_DISTS]
        try:
            result = handler(space)
        except ValidationError as exc:
            problems += [(path[1:], text) for path, text in _pairs_of(exc, ("space",))]
            result = None
        if problems:
            raise _Problems(problems)
        return result

    @field_validator("constraints", mode="before")
    @classmethod
    def _parse_constraints(cls, items: Any) -> Any:
        if isinstance(items, str) or not isinstance(items, (list, tuple)):
            return items  # pydantic reports the type
        parsed, problems = [], []
        for i, item in enumerate(items):
            try:
                parsed.append(item if isinstance(item, Constraint) else Constraint.parse(item))
            except ValueError as exc:
                problems.append(((i,), str(exc)))
        if problems:
            raise _Problems(problems)
        return parsed

    @model_validator(mode="after")
    def _check_and_resolve(self) -> "SweepSpec":
        problems: list[tuple[tuple, str]] = []
        fixed = self.fixed_settings()
        from_env = os.environ.get("MLFLOW_TRACKING_URI")
        if self.mlflow.tracking_uri is None and from_env:
            problem = _tracking_uri_problem(from_env)
            if problem:
                problems.append((("mlflow", "tracking_uri"), f"{problem} (from "
                                                             "$MLFLOW_TRACKING_URI)"))
        for name in self.space:
            if name in self.train:
                problems.append((("train", name), f"expected a field to be fixed or searched, "
                                                  f"got both (also in space.{name})"))
        if "eps_train" in self.space and self.regime is not Regime.ADVERSARIAL:
            problems.append((("space", "eps_train"), "expected regime 'adversarial' to search "
                             f"eps_train (training attack strength), got regime "
                             f"{self.regime.value!r}"))
        base = None
        try:
            base = TrainConfig(**fixed)
        except (ValueError, TypeError, AttributeError) as exc:
            field, text = _split_config_error(exc)
            if field in _TOP_LEVEL:
                problems.append(((field,), text))
            elif field in self.train:
                problems.append((("train", field), text))
            else:
                problems.append((("train",), str(exc)))
        if base is not None:
            for name, dist in self.space.items():
                for where, value in dist.endpoints():
                    try:
                        TrainConfig(**{**fixed, name: value})
                    except (ValueError, TypeError, AttributeError) as exc:
                        field, text = _split_config_error(exc)
                        text = text if field == name else f"makes TrainConfig invalid: {exc}"
                        problems.append((("space", name) + where, text))
            problems += self._check_pruner()
        if self.sampler.population_size is not None and self.sampler.type is not SamplerName.NSGA2:
            problems.append((("sampler", "population_size"), "expected only with type 'nsga2', "
                             f"got {self.sampler.population_size} with "
                             f"{self.sampler.type.value!r}"))
        if problems:
            raise _Problems(problems)
        self._resolve(base)
        return self

    def _pruner_kind(self) -> PrunerName:
        if self.pruner.type is not None:
            return self.pruner.type
        return PrunerName.MO_ASHA if len(self.objectives) >= 2 else PrunerName.MEDIAN

    def _check_pruner(self) -> list[tuple[tuple, str]]:
        p, problems, kind = self.pruner, [], self._pruner_kind()
        if kind not in _SINGLE_METRIC:
            problems += [(("pruner", key), f"expected only with a single-metric pruner "
                          f"({', '.join(sorted(k.value for k in _SINGLE_METRIC))}), got "
                          f"{_show(value)} with type {kind.value!r}")
                         for key, value in (("metric", p.metric), ("mode", p.mode))
                         if value is not None]
        if p.grace_epochs > self.epochs:
            problems.append((("pruner", "grace_epochs"),
                             f"expected <= epochs ({self.epochs}), got {p.grace_epochs}"))
        if p.n_warmup_epochs >= self.epochs:
            problems.append((("pruner", "n_warmup_epochs"),
                             f"expected < epochs ({self.epochs}), got {p.n_warmup_epochs}"))
        return problems

    def _resolve(self, base: TrainConfig) -> None:
        """Fill every None default that depends on other fields (the model stays frozen)."""
        kind = self._pruner_kind()
        update: dict[str, Any] = {"type": kind}
        if kind in _SINGLE_METRIC:
            first = next(iter(self.objectives))
            metric = Metric(self.pruner.metric[4:]) if self.pruner.metric else first
            update["metric"] = metric.val_key
            update["mode"] = self.pruner.mode or self.objectives.get(metric,
                                                                     metric.natural_direction)
        tracking = (self.mlflow.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
                    or f"sqlite:///{Path.cwd() / 'mlflow.db'}")
        storage = self.storage_path if "://" in self.storage_path \
            else str(Path(self.storage_path).expanduser().resolve())
        for key, value in (
            ("model", ModelName(base.model)),
            ("pruner", self.pruner.model_copy(update=update)),
            ("mlflow", self.mlflow.model_copy(update={
                "tracking_uri": tracking, "experiment": self.mlflow.experiment or self.name})),
            ("storage_path", storage),
        ):
            object.__setattr__(self, key, value)
        for name, dist in list(self.space.items()):  # 0 and 0.0 are one choice of a float field
            if isinstance(dist, Choice) and name not in _INT_FIELDS:
                floats = [float(v) for v in dist.values]
                self.space[name] = dist.model_copy(update={"values": floats})

    # ---- use

    @property
    def objective_names(self) -> tuple[str, ...]:
        """Objective metric names, in order."""
        return tuple(m.value for m in self.objectives)

    @property
    def directions(self) -> list[str]:
        """Optuna study directions (``"maximize"``/``"minimize"``), in objective order."""
        return [d.optuna for d in self.objectives.values()]

    @property
    def population_size(self) -> int:
        """NSGA-II population: the given one, or ceil(num_samples / 4) clipped to [2, 50]."""
        if self.sampler.population_size is not None:
            return self.sampler.population_size
        return max(2, min(50, math.ceil(self.num_samples / 4)))

    def fixed_settings(self) -> dict[str, Any]:
        """The TrainConfig keyword arguments every trial shares."""
        return {"dataset": self.dataset.value,
                "model": None if self.model is None else self.model.value,
                "epochs": self.epochs, "regime": self.regime.value, **self.train}

    def train_config(self, params: Mapping[str, Any]) -> TrainConfig:
        """The TrainConfig of one trial: fixed settings plus its sampled ``params``.

        Raises:
            SpecError: a param that is not searched, a searched field without a value, or
                a value TrainConfig rejects (paths ``params.<field>``).
        """
        problems = [f"params.{key}: expected a searched field ({', '.join(self.space)}), "
                    f"got {_show(key)}" for key in params if key not in self.space]
        problems += [f"params.{name}: expected a value for every searched field, got none"
                     for name in self.space if name not in params]
        if problems:
            raise SpecError(problems, title="invalid trial params")
        try:
            return TrainConfig(**{**self.fixed_settings(), **params})
        except (ValueError, TypeError, AttributeError) as exc:
            field, text = _split_config_error(exc)
            line = f"params.{field}: {text}" if field in params else f"params: {exc}"
            raise SpecError([line], title="invalid trial params") from None

    def optuna_space(self) -> dict[str, Any]:
        """The search space as ``{field: optuna.distributions.BaseDistribution}``."""
        return {name: dist.to_optuna() for name, dist in self.space.items()}

    def constraint_set(self) -> Constraints | None:
        """The constraints as their one evaluator (also an Optuna ``constraints_func``), or
        None when there are none."""
        return Constraints(tuple(self.constraints)) if self.constraints else None

    def _canonical(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude={"storage_path": True,
                                                     "mlflow": {"tracking_uri"}})
        data["objectives"] = [[k, v] for k, v in data["objectives"].items()]  # keep the order
        data["constraints"] = [str(c) for c in self.constraints]
        return data

    def hash(self) -> str:
        """Short sha256 of the canonical JSON of what the sweep searches and how.

        Where results go (``storage_path``, ``mlflow.tracking_uri``) is left out, so the
        same file hashes the same from any directory or machine.
        """
        text = json.dumps(self._canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def to_flat_params(self) -> dict[str, str]:
        """Flat string params for MLflow: ``space.margin_weight -> 'uniform(0.0, 1.0)'``,
        ``sampler.type -> 'nsga2'``, ``constraints.0 -> 'clean_acc >= 0.9'``, ..."""
        data = self.model_dump(mode="json")
        flat: dict[str, str] = {}
        for key, value in data.items():
            if key == "space":
                flat.update({f"space.{n}": str(d) for n, d in self.space.items()})
            elif key == "constraints":
                flat.update({f"constraints.{i}": str(c) for i, c in enumerate(self.constraints)})
            elif isinstance(value, dict):
                flat.update({f"{key}.{k}": _param_text(v) for k, v in value.items()})
            else:
                flat[key] = _param_text(value)
        flat["spec_hash"] = self.hash()
        return flat


def _param_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _split_config_error(exc: Exception) -> tuple[str | None, str]:
    """``"batch_size: expected >= 1, got 0"`` -> ``("batch_size", "expected >= 1, got 0")``;
    a message that names no single TrainConfig field gives ``(None, message)``."""
    field, sep, text = str(exc).partition(": ")
    if sep and field in _TRAIN_FIELDS:
        return field, text
    return None, str(exc)


# --------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-3`` as a float (YAML 1.2) and rejects duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if (type(key), key) in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add((type(key), key))
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Read and validate a YAML sweep spec; every problem is a :class:`SpecError`.

    Example:
        >>> load_spec("examples/digits-quick.yaml").num_samples
        8
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([f"no such file (relative paths start at {os.getcwd()})"], source,
                        "cannot read the sweep spec") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([f"expected a readable UTF-8 file, got {exc}"], source,
                        "cannot read the sweep spec") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise SpecError([f"{where}expected valid YAML, got {what}"], source,
                        "cannot parse the sweep spec") from None
    except RecursionError:   # PyYAML composes nested nodes recursively
        raise SpecError(["expected valid YAML, got nesting deeper than Python's recursion "
                         "limit"], source, "cannot parse the sweep spec") from None
    if not isinstance(data, Mapping):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise SpecError([f"expected a mapping of spec fields at the top level, got {got}"],
                        source)
    return SweepSpec.from_dict(data, source)


# --------------------------------------------------------------------------- errors


def _problems_of(error: ValidationError) -> list[str]:
    """Turn pydantic's errors into ``path: expected ..., got ...`` lines (deduplicated)."""
    out: list[str] = []
    for path, text in _pairs_of(error):
        line = f"{_dotted(path)}: {text}" if path else text
        if line not in out:
            out.append(line)
    return out


def _pairs_of(error: ValidationError, prefix: tuple = ()) -> list[tuple[tuple, str]]:
    """(path, text) per problem; ``prefix`` is the path of the object ``error`` is about."""
    out: list[tuple[tuple, str]] = []
    for err in error.errors(include_url=False):
        raw = prefix + tuple(err["loc"])
        loc = tuple(p for i, p in enumerate(raw) if p != "[key]"
                    and not (i == 2 and raw[0] == "space" and p in _DIST_BY_TAG))
        exc = (err.get("ctx") or {}).get("error")
        if isinstance(exc, SpecError):  # model_validate() runs the custom __init__
            out += [((), line) for line in exc.problems]
        elif isinstance(exc, _Problems):
            out += [(loc + rel, text) for rel, text in exc.problems]
        else:
            out.append(_describe(err, raw, loc))
    return out


_KINDS = {
    "int": "an integer", "float": "a number", "string": "a string", "bool": "true or false",
    "dict": "a mapping", "model": "a mapping", "model_attributes": "a mapping",
    "list": "a list", "tuple": "a list", "enum": None,
}


def _describe(err: Mapping[str, Any], raw: tuple, loc: tuple) -> tuple[tuple, str]:
    kind, ctx, got = err["type"], err.get("ctx") or {}, _show(err.get("input"))
    if kind == "missing":
        return loc, "expected a value (required), got none"
    if kind == "extra_forbidden":
        allowed = _fields_at(raw[:-1])
        hint = f" ({', '.join(allowed)})" if allowed else ""
        return loc, f"expected a known field{hint}, got unknown field {_show(loc[-1])}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = ", ".join(map(repr, _DIST_BY_TAG))
        given = err.get("input")
        tag = _show(given["type"]) if isinstance(given, Mapping) and "type" in given else "no type"
        return loc + ("type",), f"expected one of {tags}, got {tag}"
    if kind in ("enum", "literal_error"):
        return loc, f"expected one of {ctx.get('expected')}, got {got}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
              "less_than_equal": "<="}[kind]
        bound = next(iter(ctx.values()))
        return loc, f"expected {op} {bound}, got {got}"
    if kind == "too_short":
        return loc, f"expected at least {ctx.get('min_length')} item(s), got {got}"
    if kind == "string_too_short":
        return loc, f"expected a non-empty string, got {got}"
    if kind == "string_too_long":
        return loc, f"expected at most {ctx.get('max_length')} characters, got {got}"
    if kind == "string_pattern_mismatch":
        return loc, f"expected letters, digits, '_', '.' or '-' only, got {got}"
    if kind == "invalid_key":
        return loc, f"expected a string key, got {got}"
    if kind == "finite_number":
        return loc, f"expected a finite number, got {got}"
    base = kind.split("_")[0] if not kind.startswith("model_attributes") else "model_attributes"
    if _KINDS.get(base):
        return loc, f"expected {_KINDS[base]}, got {got}"
    if kind == "value_error" and "error" in ctx:
        return loc, str(ctx["error"])
    msg = err.get("msg", kind)
    return loc, f"{msg[:1].lower()}{msg[1:]}, got {got}"


def _fields_at(loc: tuple) -> list[str] | None:
    """Field names of the spec model at ``loc`` (for 'unknown field' hints)."""
    cls: type[BaseModel] = SweepSpec
    i = 0
    while i < len(loc):
        if cls is SweepSpec and loc[i] == "space":
            if len(loc) != i + 3 or loc[i + 2] not in _DIST_BY_TAG:
                return None
            return list(_DIST_BY_TAG[loc[i + 2]].model_fields)
        field = cls.model_fields.get(loc[i]) if isinstance(loc[i], str) else None
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        cls, i = ann, i + 1
    return list(cls.model_fields)
