"""The sweep spec itself: :class:`SweepSpec`, the whole validated file.

Validation is pure: it reads neither the environment nor the working directory, so the
same mapping gives the same spec anywhere. Where results go is made concrete once, by
:meth:`SweepSpec.resolved`, where a sweep starts or is read back.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Annotated, Any, Callable, Mapping

from pydantic import (Field, Strict, StringConstraints, ValidationError, field_validator,
                      model_validator)

from tgo.config import Dataset, ModelName, Regime, TrainConfig
from tune.objectives import Constraint, Constraints, Direction, Metric
from tune.spec._base import Int, _Frozen
from tune.spec._errors import _CONTROL, SpecError, _huge_ints, _Problems, _show
from tune.spec._train import (_INT_FIELDS, _TOP_LEVEL, SEARCHABLE, _split_config_error,
                              _train_problems)
from tune.spec._translate import _pairs_of, _problems_of
from tune.spec.distributions import _FLOAT_DISTS, Choice, Distribution
from tune.spec.settings import (_SINGLE_METRIC, EvaluationSpec, MlflowSpec, PrunerName,
                                PrunerSpec, ResourcesSpec, SamplerName, SamplerSpec)
from tune.spec.stopping import StopSpec, WarmStartSpec

__all__ = ["SweepSpec"]


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
    stop: StopSpec = StopSpec()
    warm_start: WarmStartSpec | None = None

    def __init__(self, /, **data: Any) -> None:
        huge = _huge_ints(data)
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise SpecError(huge + [p for p in _problems_of(exc, type(self)) if p not in huge]) from None
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
        problems = _train_problems(train)
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
            parts = Path(path).parts  # ~ stays as written: $HOME is read by resolved()
            if parts and parts[0].startswith("~") and parts[0] != "~":
                try:  # ~user: the user must exist (the user database, not the environment)
                    Path(parts[0]).expanduser()
                except RuntimeError:
                    problem = f"expected a folder of a known user, got {_show(path)}"
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
            problems += [(path[1:], text) for path, text in _pairs_of(exc, cls, ("space",))]
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
    def _check_and_complete(self) -> "SweepSpec":
        problems: list[tuple[tuple, str]] = []
        fixed = self.fixed_settings()
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
        if self.sampler.n_startup_trials is not None and self.sampler.type not in (
                SamplerName.TPE, SamplerName.GP):
            problems.append((("sampler", "n_startup_trials"), "expected only with type 'tpe' "
                             f"or 'gp', got {self.sampler.n_startup_trials} with "
                             f"{self.sampler.type.value!r}"))
        if problems:
            raise _Problems(problems)
        self._complete(base)
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

    def _complete(self, base: TrainConfig) -> None:
        """Fill every None default that depends on other fields (the model stays frozen);
        where results go is left as written (see :meth:`resolved`)."""
        kind = self._pruner_kind()
        update: dict[str, Any] = {"type": kind}
        if kind in _SINGLE_METRIC:
            first = next(iter(self.objectives))
            metric = Metric(self.pruner.metric[4:]) if self.pruner.metric else first
            update["metric"] = metric.val_key
            update["mode"] = self.pruner.mode or self.objectives.get(metric,
                                                                     metric.natural_direction)
        for key, value in (
            ("model", ModelName(base.model)),
            ("pruner", self.pruner.model_copy(update=update)),
            ("mlflow", self.mlflow.model_copy(update={
                "experiment": self.mlflow.experiment or self.name})),
        ):
            object.__setattr__(self, key, value)
        for name, dist in list(self.space.items()):  # 0 and 0.0 are one choice of a float field
            if isinstance(dist, Choice) and name not in _INT_FIELDS:
                floats = [float(v) for v in dist.values]
                self.space[name] = dist.model_copy(update={"values": floats})

    # ---- where results go

    def resolved(self, environ: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike | None = None) -> "SweepSpec":
        """A copy with where results go made concrete, read from ``environ`` (default
        ``os.environ``) and ``cwd`` (default: the working directory) once, where a sweep
        starts or is read back: ``mlflow.tracking_uri`` by
        :func:`~tune.spec.default_tracking_uri` when the spec names none, and a local
        ``storage_path`` made absolute (``~`` expanded). The hash does not change.

        Raises:
            SpecError: ``$MLFLOW_TRACKING_URI`` is no usable tracking URI.

        Example:
            >>> spec = SweepSpec.from_dict({"name": "t", "dataset": "digits", "epochs": 2,
            ...     "num_samples": 4, "space": {"margin": {"type": "uniform", "low": 0.2,
            ...                                            "high": 1}}})
            >>> spec.mlflow.tracking_uri, spec.storage_path
            (None, 'runs')
            >>> here = spec.resolved(environ={}, cwd="/work")
            >>> here.mlflow.tracking_uri, here.storage_path
            ('sqlite:////work/mlflow.db', '/work/runs')
        """
        storage = self.storage_path
        if "://" not in storage:
            folder = Path.cwd() if cwd is None else Path(cwd)
            storage = str((folder / Path(storage).expanduser()).resolve())
        return self.model_copy(update={"mlflow": self.mlflow.resolved(environ, cwd),
                                       "storage_path": storage})

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

    @property
    def startup_trials(self) -> int:
        """Random trials before TPE or GP model the rest: the given ``n_startup_trials``,
        or ceil(num_samples / 4) clipped to [4, 10]."""
        if self.sampler.n_startup_trials is not None:
            return self.sampler.n_startup_trials
        return max(4, min(10, math.ceil(self.num_samples / 4)))

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
        for key in ("stop", "warm_start"):   # absent from older specs: same hash as before
            if getattr(self, key) == type(self).model_fields[key].default:
                data.pop(key)
        if self.sampler.n_startup_trials is None:
            data["sampler"].pop("n_startup_trials")
        if data.get("warm_start"):
            data["warm_start"].pop("tracking_uri")   # where it is read from, like mlflow's
        data["objectives"] = [[k, v] for k, v in data["objectives"].items()]  # keep the order
        data["constraints"] = [str(c) for c in self.constraints]
        return data

    def hash(self) -> str:
        """Short sha256 of the canonical JSON of what the sweep searches and how.

        Where results go (``storage_path``, ``mlflow.tracking_uri``) is left out, so the
        same file hashes the same from any directory or machine, resolved or not.
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
