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

Where results go (``mlflow.tracking_uri``, ``storage_path``) is left as written by
validation, which reads neither the environment nor the working directory;
:meth:`SweepSpec.resolved` makes it concrete once, where a sweep starts or is read back.

Modules: :mod:`~tune.spec.schema` (the spec), :mod:`~tune.spec.settings` (sampler, pruner,
resources, evaluation, MLflow), :mod:`~tune.spec.stopping` (``stop``, ``warm_start``), :mod:`~tune.spec.distributions` (the search space),
:mod:`~tune.spec.reading` (the YAML file); private: ``_errors`` (the error and its lines),
``_translate`` (pydantic's errors as those lines), ``_train`` (the link to TrainConfig),
``_base`` (the frozen model base).
"""

from tune.spec._errors import SpecError
from tune.spec._train import SEARCHABLE
from tune.spec.distributions import Choice, IntRange, LogUniform, Uniform
from tune.spec.reading import SPEC_FILE, load_spec, read_yaml
from tune.spec.schema import SweepSpec
from tune.spec.settings import (EvaluationSpec, MlflowSpec, PrunerName, PrunerSpec,
                                ResourcesSpec, SamplerName, SamplerSpec, default_tracking_uri)
from tune.spec.stopping import StopSpec, WarmStartSpec

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
    "StopSpec",
    "SweepSpec",
    "Uniform",
    "WarmStartSpec",
    "default_tracking_uri",
    "load_spec",
    "read_yaml",
]
