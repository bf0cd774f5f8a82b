"""The sweep specification: one YAML file, validated into a frozen typed model before anything starts.

A spec fixes the training settings (``dataset``, ``model``, ``epochs``, ``regime`` and any
other :class:`tgo.config.TrainConfig` field under ``train``), the search ``space``, the
``objectives`` and ``constraints``, and how the sweep runs (``sampler``, ``pruner``,
``num_samples``, ``resources``, final ``evaluation``, ``mlflow``, ``storage_path``).
Every problem in a file is reported at once, each as ``field.path: expected ..., got ...``,
in one :class:`SpecError`.

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
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Mapping, Sequence, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Field, Strict, StringConstraints,
                      ValidationError, field_validator, model_validator)

from tgo.config import Attack, Dataset, ModelName, Regime, TrainConfig
from tune.constraints import Constraint, Direction, Metric, constraints_func
from tune.space import SEARCHABLE, Distribution, IntRange, Problems, frozen_model

__all__ = [
    "EvaluationSpec",
    "MlflowSpec",
    "PrunerName",
    "PrunerSpec",
    "ResourcesSpec",
    "SAMPLERS",
    "SamplerName",
    "SamplerSpec",
    "SpecError",
    "SweepSpec",
    "load_spec",
    "make_sampler",
]
