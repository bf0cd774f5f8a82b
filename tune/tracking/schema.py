"""How a sweep is laid out in MLflow: tag names, search filters and how values become text.

One parent run per sweep (tag ``tgo.kind = sweep``), one child run per trial
(``tgo.kind = trial``, ``mlflow.parentRunId`` = the parent). Every module that writes or
reads these records takes the names from here, so a tag is spelled once.

Example:
    >>> children_filter("abc", trial_id="t1")
    "tags.`mlflow.parentRunId` = 'abc' and tags.`tgo.trial_id` = 't1'"
    >>> flatten({"space": {"margin": {"low": 0.1}}})
    {'space.margin.low': 0.1}
"""

from __future__ import annotations

import enum
import json
import numbers
import re
from typing import Any, Mapping, Sequence

from tune.objectives import Metric
from tune.pareto import Objective
from tune.versions import TAG_PREFIX as VERSION_PREFIX

__all__ = [
    "CHECKPOINT", "EVAL_DESCRIPTION", "EVAL_PREFIX", "EXPERIMENT_KIND", "EXPERIMENT_KIND_MODELS",
    "GIT_COMMIT", "HYPERVOLUME",
    "KIND", "KIND_SWEEP", "KIND_TRIAL", "MAX_KEY", "MAX_METRICS_PER_BATCH", "MAX_PARAM_VALUE",
    "MAX_PARAMS_TAGS_PER_BATCH", "MAX_TAG_VALUE", "MODEL_LOGGED", "MODEL_URI", "NODE_ID",
    "OBJECTIVES", "OBJECTIVES_JSON", "PARENT", "PARETO", "PARETO_RANK", "RESUMED_UNDER",
    "RETRIES", "SPEC_ARTIFACT", "SPEC_HASH", "STATUS", "SWEEP_NAME", "TRIAL_ID",
    "VERSION_PREFIX", "checked_text", "children_filter", "flatten", "key", "number",
    "objective_tags", "objectives_from_tags", "parse", "sweeps_filter", "text",
]

# ----------------------------------------------------------------------------- tags

#: ``sweep`` on a parent run, ``trial`` on a child run.
KIND, KIND_SWEEP, KIND_TRIAL = "tgo.kind", "sweep", "trial"
#: MLflow's own nesting tag: the parent run id on every child.
PARENT = "mlflow.parentRunId"
#: Experiment tag that picks the MLflow UI's view: without it MLflow 3 opens a new
#: experiment on the GenAI traces overview ("No data available"); a sweep is model
#: development, whose view opens on the runs table.
EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND_MODELS = "custom_model_development"
SWEEP_NAME = "tgo.sweep_name"
SPEC_HASH = "tgo.spec_hash"
#: Parent: the objectives as a label for people (``clean_acc (max),robust_acc (max)``) ...
OBJECTIVES = "tgo.objectives"
#: ... and the same as JSON for programs (``[{"name": "clean_acc", "direction": "max",
#: "reference": null}, ...]``), read by :func:`objectives_from_tags`.
OBJECTIVES_JSON = "tgo.objectives_json"
GIT_COMMIT = "tgo.git_commit"
#: Parent: the installed versions it started under differ from these (a resume).
RESUMED_UNDER = "tgo.resumed_under"
#: Parent-run tag: why the sweep ended before num_samples (its ``stop`` rule).
STOP_REASON = "tgo.stop_reason"
#: Parent-run tags of a warm-started sweep: the earlier sweep's parent run and its trials.
WARM_START_RUN = "tgo.warm_start.parent_run_id"
WARM_START_TRIALS = "tgo.warm_start.trials"
WARM_START_URL = "tgo.warm_start.url"
TRIAL_ID = "tgo.trial_id"
#: Child: ``running``, ``finished``, ``pruned <why>``, ``failed: <error>``, ``stopped: <why>``
#: or ``retrying after: <error>``.
STATUS = "status"
CHECKPOINT = "tgo.checkpoint"
RETRIES = "tgo.retries"
#: On a child run that ended after Ray's last state snapshot of a driver that then died:
#: its record stands, but the resumed sweep (sampler, Ray's results, front) does not know it.
ORPHAN = "tgo.orphan"
NODE_ID = "ray.node_id"
#: Child: ``true`` on the members of the Pareto front; ``pareto_rank`` 0 = front.
PARETO, PARETO_RANK = "pareto", "pareto_rank"
MODEL_LOGGED = "tgo.model_logged"
MODEL_URI = "tgo.model_uri"
#: Child tags describing the attack behind ``robust_acc`` (:mod:`tgo.final_eval`).
EVAL_PREFIX = "eval_"
EVAL_DESCRIPTION = "eval_description"
#: Parent metric; its step is the number of finished trials.
HYPERVOLUME = "hypervolume"
#: Parent artifact holding the spec.
SPEC_ARTIFACT = "spec.yaml"

# MLflow's limits (mlflow.utils.validation); copied so this module imports without mlflow.
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000


# ----------------------------------------------------------------------------- filters


def checked_text(value: Any, field: str) -> str:
    """``value`` when it is non-empty text that a search filter can quote, else ValueError."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field}: expected a non-empty string, got {value!r}")
    if "'" in value or "\\" in value:
        raise ValueError(f"{field}: expected no quotes or backslashes, got {value!r}")
    return value


def _is(tag: str, value: str) -> str:
    return f"tags.`{tag}` = '{checked_text(value, tag)}'"


def sweeps_filter(sweep_name: str | None = None, spec_hash: str | None = None, *,
                  unfinished: bool = False) -> str:
    """MLflow filter of the parent runs of sweep ``sweep_name`` (any sweep when None).

    Example:
        >>> sweeps_filter("quick")
        "tags.`tgo.kind` = 'sweep' and tags.`tgo.sweep_name` = 'quick'"
    """
    parts = [_is(KIND, KIND_SWEEP)]
    if sweep_name is not None:
        parts.append(_is(SWEEP_NAME, sweep_name))
    if spec_hash is not None:
        parts.append(_is(SPEC_HASH, spec_hash))
    if unfinished:
        parts.append("attributes.status != 'FINISHED'")
    return " and ".join(parts)


def children_filter(parent_run_id: str, *, trial_id: str | None = None,
                    status: str | None = None, on_front: bool = False) -> str:
    """MLflow filter of the child runs of ``parent_run_id``: one trial's, those in run
    status ``status`` (``RUNNING``, ``FINISHED``...), or the front members."""
    parts = [_is(PARENT, parent_run_id)]
    if trial_id is not None:
        parts.append(_is(TRIAL_ID, trial_id))
    if status is not None:
        parts.append(f"attributes.status = '{status}'")
    if on_front:
        parts.append(_is(PARETO, "true"))
    return " and ".join(parts)


# ----------------------------------------------------------------------------- objectives


def objective_tags(objectives: Sequence[Objective]) -> dict[str, str]:
    """The parent's objective tags: the label and its JSON twin."""
    plain = [{"name": o.name, "direction": o.direction.value, "reference": o.reference}
             for o in objectives]
    return {OBJECTIVES: ",".join(o.label for o in objectives),
            OBJECTIVES_JSON: json.dumps(plain)}


def _metric_name(name: str) -> str:
    """``clean_acc`` also from ``Metric.CLEAN_ACC``, the enum's str() an old label may hold."""
    if name.startswith("Metric.") and name[len("Metric."):] in Metric.__members__:
        return Metric[name[len("Metric."):]].value
    return name


def objectives_from_tags(tags: Mapping[str, str], params: Mapping[str, str] = {}
                         ) -> tuple[Objective, ...]:
    """A parent run's objectives, in order: from :data:`OBJECTIVES_JSON`; for a parent
    written before that tag, from the label, else from the spec's ``objectives.<name>``
    params (whose order MLflow does not keep)."""
    if tags.get(OBJECTIVES_JSON):
        return tuple(Objective(**o) for o in json.loads(tags[OBJECTIVES_JSON]))
    found = re.findall(r"([A-Za-z_][\w.]*) \((max|min)\)", tags.get(OBJECTIVES, ""))
    if not found:
        found = [(k.split(".", 1)[1], v) for k, v in params.items()
                 if k.startswith("objectives.") and v in ("max", "min")]
    return tuple(Objective(_metric_name(name), direction) for name, direction in found)


# ----------------------------------------------------------------------------- values as text


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"space": {"margin": {"low": 0.1}}}`` -> ``{"space.margin.low": 0.1}``."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        full = f"{prefix}{name}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, full + "."))
        else:
            out[full] = value
    return out


def key(name: str) -> str:
    """A metric/param/tag key MLflow accepts (bad characters -> ``_``, no empty path parts)."""
    clean = re.sub(r"[^/\w.\- ]", "_", str(name))
    parts = [p for p in clean.split("/") if p not in ("", ".", "..")]
    return "/".join(parts)[:MAX_KEY] or "_"


def text(value: Any, limit: int) -> str:
    """A param or tag value: strings as they are, the rest as JSON, cut at ``limit``."""
    if isinstance(value, enum.Enum):
        value = value.value
    out = value if isinstance(value, str) else json.dumps(value, default=str)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def parse(value: str) -> Any:
    """Inverse of :func:`text` for the scalars and lists it writes."""
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def number(value: Any) -> float | None:
    """``value`` as a float when it is a real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)
