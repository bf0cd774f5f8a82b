"""The sections of a spec that say how a sweep runs: ``sampler``, ``pruner``,
``resources``, final ``evaluation`` and ``mlflow`` (with the one default-store rule).

Example:
    >>> PrunerSpec(type="median").eta
    3
    >>> MlflowSpec().resolved(environ={}, cwd="/work").tracking_uri
    'sqlite:////work/mlflow.db'
"""

from __future__ import annotations

import enum
import os
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Mapping

from pydantic import Field, Strict, StringConstraints, field_validator, model_validator

from tgo.config import Attack
from tune.objectives import Direction, Metric
from tune.spec._base import _Frozen
from tune.spec._errors import _CONTROL, SpecError, _Problems, _show

__all__ = ["EvaluationSpec", "MlflowSpec", "PrunerName", "PrunerSpec", "ResourcesSpec",
           "SamplerName", "SamplerSpec", "default_tracking_uri"]

class SamplerName(str, enum.Enum):
    NSGA2 = "nsga2"
    TPE = "tpe"
    GP = "gp"
    RANDOM = "random"


class SamplerSpec(_Frozen):
    """Optuna sampler. ``population_size`` (NSGA-II only; >= 2) defaults to about a quarter
    of ``num_samples`` (at most 50), so a small sweep still runs several generations.
    ``n_startup_trials`` (``tpe`` and ``gp`` only; >= 1): random trials before the model
    takes over, by default a quarter of ``num_samples``, from 4 to 10 (Optuna's default)."""

    type: SamplerName = SamplerName.NSGA2
    seed: Annotated[int, Strict(), Field(ge=0, le=2**32 - 1)] = 0  # numpy's seed range
    population_size: Annotated[int, Strict(), Field(ge=2)] | None = None
    n_startup_trials: Annotated[int, Strict(), Field(ge=1)] | None = None


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


def default_tracking_uri(environ: Mapping[str, str] | None = None,
                         cwd: str | os.PathLike | None = None) -> str:
    """The MLflow store of a sweep that names none: ``$MLFLOW_TRACKING_URI``, else
    ``sqlite:///<cwd>/mlflow.db`` (the one place this rule is written).

    Args:
        environ: where ``MLFLOW_TRACKING_URI`` is looked up (default: ``os.environ``).
        cwd: the folder of the default database (default: the working directory).

    Example:
        >>> default_tracking_uri({"MLFLOW_TRACKING_URI": "http://mlflow:5000"})
        'http://mlflow:5000'
        >>> default_tracking_uri({}, cwd="/work")
        'sqlite:////work/mlflow.db'
    """
    env = os.environ if environ is None else environ
    folder = Path.cwd() if cwd is None else Path(cwd).resolve()
    return env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{folder / 'mlflow.db'}"


class MlflowSpec(_Frozen):
    """Where trials are logged. Validation fills ``experiment`` with the spec name and
    leaves ``tracking_uri`` None when the spec gives none; :meth:`resolved` fills it where a
    sweep starts or is read back (see :func:`default_tracking_uri`)."""

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

    def resolved(self, environ: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike | None = None) -> "MlflowSpec":
        """This section with ``tracking_uri`` filled by :func:`default_tracking_uri` when
        the spec named none (a ``$MLFLOW_TRACKING_URI`` is checked like a spec's URI).

        Raises:
            SpecError: ``$MLFLOW_TRACKING_URI`` is no usable tracking URI.
        """
        if self.tracking_uri is not None:
            return self
        env = os.environ if environ is None else environ
        uri = default_tracking_uri(env, cwd)
        problem = _tracking_uri_problem(uri) if env.get("MLFLOW_TRACKING_URI") else None
        if problem:
            raise SpecError([f"mlflow.tracking_uri: {problem} (from $MLFLOW_TRACKING_URI)"])
        return self.model_copy(update={"tracking_uri": uri})


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
