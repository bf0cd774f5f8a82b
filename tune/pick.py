"""Pick a deployable configuration from a sweep's Pareto front (``tgo pick``).

The front is the sweep's child runs tagged ``pareto=true``. Requirements such as
``clean_acc >= 0.9`` or ``timesteps <= 4`` (``name op number``, op one of ``>= <= > < ==``;
a name is a final metric or a numeric :class:`tgo.config.TrainConfig` field) filter it, and
the feasible member that is best on one objective is chosen. The explanation shows the
front as a table with, per member, the requirements it fails; when none is feasible it
says which requirement empties the front (one no member meets, or one whose removal would
leave members).

The choice can be registered in the MLflow Model Registry (a new version of the chosen
run's logged model, alias ``deploy``, tags with the objectives and the attack that measured
them) and written to ``deploy.yaml`` (full TrainConfig, metrics, attack, model URI).

Reproducing the clean accuracy: the models are stochastic when ``noise_scale > 0`` and
``noise_at_eval`` (one noisy forward per example), so the number checked is the clean test
accuracy *with the membrane noise forced off*, which is deterministic: it is measured on
the logged model at pick time (tag ``clean_acc_noise_off``) and again on the registered
model by :func:`check_deployment`; the two must be equal. The sweep's own ``clean_acc``
(noise as trained, on ``eval_n`` test examples) is compared too, within the spread of two
independent noisy evaluations (4 standard deviations, at most ``4 / sqrt(2 n)``; exact for
a model without noise).

Example:
    >>> front = load_front_members("digits-quick")                     # doctest: +SKIP
    >>> result = pick(front, [Requirement.parse("clean_acc >= 0.9")], "robust_acc")
    ... # doctest: +SKIP
    >>> print(format_pick(result))                                     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import operator
import os
import re
import tempfile
import typing
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tgo.config import TrainConfig, as_enum
from tune.objectives import Metric
from tune.objectives import Direction
from tune.pareto import Objective

__all__ = [
    "DEPLOY_ALIAS",
    "DeployCheck",
    "FrontMember",
    "NUMERIC_FIELDS",
    "PickResult",
    "Registration",
    "Requirement",
    "SweepFront",
    "check_deployment",
    "deploy_document",
    "format_pick",
    "load_front_members",
    "load_model",
    "measure_clean_accuracy",
    "member_config",
    "pick",
    "read_deploy",
    "register",
]

DEPLOY_ALIAS = "deploy"
METRICS = tuple(m.value for m in Metric)
_HINTS = typing.get_type_hints(TrainConfig)
#: TrainConfig fields a requirement may bound (plain numbers).
NUMERIC_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig)
                       if _HINTS[f.name] in (int, float))
_EVAL_KEYS = ("eval_description", "eval_attack", "eval_eps", "eval_steps", "eval_step_size",
              "eval_restarts", "eval_eot_samples", "eval_noise", "eval_n")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and not math.isnan(value)


def _equal(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": _equal}
_FORM = ("'<name> <op> <number>' such as 'clean_acc >= 0.9' or 'timesteps <= 4', op one of "
         ">=, <=, >, <, ==")
_PATTERN = re.compile(r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>>=|<=|==|>|<)\s*"
                      r"(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


# ----------------------------------------------------------------------------- requirements


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One requirement ``name op value`` on a front member's metric or config field.

    Example:
        >>> r = Requirement.parse("timesteps<=4")
        >>> str(r), r.holds(2), r.holds(8)
        ('timesteps <= 4', True, False)
    """

    name: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> "Requirement":
        """Parse ``"clean_acc >= 0.9"``; raise ValueError showing the expected form."""
        match = _PATTERN.match(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"require: expected {_FORM}, got {text!r}")
        name = match["name"]
        if name not in METRICS and name not in NUMERIC_FIELDS:
            raise ValueError(f"require: expected a metric ({', '.join(METRICS)}) or a numeric "
                             f"TrainConfig field ({', '.join(NUMERIC_FIELDS)}), got {name!r} "
                             f"in {text!r}")
        value = float(match["value"])
        if not math.isfinite(value):
            raise ValueError(f"require: expected a finite bound, got {match['value']!r} in "
                             f"{text!r}")
        return cls(name, match["op"], value)

    def holds(self, got: Any) -> bool:
        """Whether ``got`` satisfies the requirement (a missing or non-number never does)."""
        return _is_number(got) and _OPS[self.op](float(got), self.value)

    def __str__(self) -> str:
        return f"{self.name} {self.op} {self.value:g}"


# ----------------------------------------------------------------------------- the front


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


@dataclasses.dataclass(frozen=True)
class FrontMember:
    """A child run on the Pareto front: final metrics, params (parsed), ``eval_*`` tags."""

    trial_id: str
    run_id: str
    metrics: Mapping[str, float]
    params: Mapping[str, Any]
    evaluation: Mapping[str, Any]
    model_uri: str | None

    def value(self, name: str) -> Any:
        """A metric (final value) or, failing that, a param."""
        return self.metrics[name] if name in self.metrics else self.params.get(name)


@dataclasses.dataclass(frozen=True)
class SweepFront:
    """A sweep's front as read from MLflow, with where it came from."""

    name: str
    tracking_uri: str
    experiment: str
    experiment_id: str
    parent_run_id: str
    spec_hash: str | None
    objectives: tuple[Objective, ...]
    searched: tuple[str, ...]
    members: tuple[FrontMember, ...]


def _metric_name(name: str) -> str:
    """``clean_acc``; also from ``Metric.CLEAN_ACC``, the enum's str() that a tag may hold."""
    if name.startswith("Metric.") and name[len("Metric."):] in Metric.__members__:
        return Metric[name[len("Metric."):]].value
    return name


def _objectives(tags: Mapping[str, str], params: Mapping[str, str]) -> tuple[Objective, ...]:
    found = re.findall(r"([A-Za-z_][\w.]*) \((max|min)\)", tags.get("tgo.objectives", ""))
    if not found:  # the spec's params objectives.<name> = max|min
        found = [(k.split(".", 1)[1], v) for k, v in params.items()
                 if k.startswith("objectives.") and v in ("max", "min")]
    return tuple(Objective(_metric_name(name), direction) for name, direction in found)


def load_front_members(sweep: str, *, tracking_uri: str | None = None,
                       experiment: str | None = None) -> SweepFront:
    """The front (children tagged ``pareto=true``) of the newest sweep called ``sweep``.

    ``sweep`` is a sweep name, a spec file or a Ray results folder (see
    :func:`tune.tracking.reader.resolve_sweep`).

    Raises:
        ValueError: no such experiment or sweep.
    """
    from mlflow import MlflowClient

    from tune.tracking.reader import find_parent_run, resolve_sweep

    name, uri, exp, _ = resolve_sweep(sweep, tracking_uri, experiment)
    client = MlflowClient(tracking_uri=uri)
    parent = find_parent_run(client, exp, name)
    runs = client.search_runs([parent.info.experiment_id],
                              filter_string=f"tags.`mlflow.parentRunId` = "
                                            f"'{parent.info.run_id}' and tags.pareto = 'true'",
                              max_results=1000)
    members = []
    for run in runs:
        tags = run.data.tags
        logged = tags.get("tgo.model_logged") == "true"
        members.append(FrontMember(
            trial_id=tags.get("tgo.trial_id", run.info.run_name),
            run_id=run.info.run_id, metrics=dict(run.data.metrics),
            params={k: _parse(v) for k, v in run.data.params.items()},
            evaluation={k: _parse(v) if k != "eval_description" else v
                        for k, v in tags.items() if k in _EVAL_KEYS},
            model_uri=(tags.get("tgo.model_uri") or f"runs:/{run.info.run_id}/model")
            if logged else None))
    members.sort(key=lambda m: m.trial_id)
    params = parent.data.params
    searched = tuple(sorted({k.split(".")[1] for k in params if k.startswith("space.")}))
    return SweepFront(name, uri, exp, parent.info.experiment_id, parent.info.run_id,
                      parent.data.tags.get("tgo.spec_hash"),
                      _objectives(parent.data.tags, params), searched, tuple(members))


# ----------------------------------------------------------------------------- picking


@dataclasses.dataclass(frozen=True)
class PickResult:
    """The choice and its explanation.

    Attributes:
        failures: per member run id, the requirements it fails, as text with the value.
        chosen: the best feasible member on ``objective``; None when none is feasible.
        why_empty: when none is feasible, which requirement(s) empty the front.
    """

    front: SweepFront
    requirements: tuple[Requirement, ...]
    objective: Objective
    failures: Mapping[str, tuple[str, ...]]
    feasible: tuple[FrontMember, ...]
    chosen: FrontMember | None
    why_empty: tuple[str, ...]


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "missing" if value is None else str(value)


def _emptiers(members: Sequence[FrontMember], reqs: Sequence[Requirement]) -> list[str]:
    """Which requirements leave no member: met by none, or dropping one leaves some."""
    lines = []
    for req in reqs:
        if not any(req.holds(m.value(req.name)) for m in members):
            values = [m.value(req.name) for m in members if _is_number(m.value(req.name))]
            near = ""
            if values:
                best = (max(values) if req.op in (">=", ">") else min(values)
                        if req.op in ("<=", "<") else min(values, key=lambda v: abs(v - req.value)))
                near = f" (closest on the front: {_show(best)})"
            lines.append(f"'{req}' empties the front by itself: no member meets it{near}")
    if lines:
        return lines
    for req in reqs:
        others = [r for r in reqs if r is not req]
        left = [m for m in members if all(r.holds(m.value(r.name)) for r in others)]
        if left:
            lines.append(f"'{req}' empties the front: without it {len(left)} member(s) would "
                         f"remain ({', '.join(m.trial_id for m in left)})")
    return lines or ["no single requirement is to blame: every member fails at least two, "
                     "and dropping any one of them leaves none"]


def pick(front: SweepFront, requirements: Sequence[Requirement | str],
         objective: str | None = None, direction: Direction | str = Direction.MAX) -> PickResult:
    """Choose the feasible front member that is best on ``objective``.

    Ties go to the sweep's other objectives in order, then to the trial id.

    Args:
        objective: a metric or numeric param (default: the sweep's first objective, in its
            direction).
        direction: ``max`` or ``min``.

    Example:
        >>> result = pick(front, ["clean_acc >= 0.9"], "robust_acc")   # doctest: +SKIP
        >>> result.chosen.trial_id                                      # doctest: +SKIP
        'a1b2_00003'
    """
    reqs = tuple(r if isinstance(r, Requirement) else Requirement.parse(r) for r in requirements)
    if objective is None:
        if not front.objectives:
            raise ValueError("maximize: expected an objective to pick by; the sweep records "
                             "none (pass --maximize NAME or --minimize NAME)")
        goal = front.objectives[0]
    else:
        if objective not in METRICS and objective not in NUMERIC_FIELDS:
            raise ValueError(f"objective: expected a metric ({', '.join(METRICS)}) or a "
                             f"numeric TrainConfig field, got {objective!r}")
        goal = Objective(objective, as_enum(Direction, direction, "direction"))
    failures = {m.run_id: tuple(f"{r} ({_show(m.value(r.name))})" for r in reqs
                                if not r.holds(m.value(r.name))) for m in front.members}
    feasible = tuple(m for m in front.members if not failures[m.run_id])
    scorable = [m for m in feasible if _is_number(m.value(goal.name))]

    def key(m: FrontMember) -> tuple:
        sign = [1.0 if o.direction is Direction.MAX else -1.0 for o in (goal, *front.objectives)]
        values = [m.value(o.name) for o in (goal, *front.objectives)]
        return tuple(-s * v if _is_number(v) else math.inf
                     for s, v in zip(sign, values)) + (m.trial_id,)

    chosen = min(scorable, key=key) if scorable else None
    why: tuple[str, ...] = ()
    if not front.members:
        why = ("the sweep has no Pareto front yet (no finished trial is tagged pareto=true)",)
    elif not feasible:
        why = tuple(_emptiers(front.members, reqs))
    return PickResult(front, reqs, goal, failures, feasible, chosen, why)


def format_pick(result: PickResult) -> str:
    """The front as a table (one verdict per member), then why this member was chosen."""
    front, goal = result.front, result.objective
    metric_cols = list(dict.fromkeys([*(o.name for o in front.objectives), goal.name,
                                      *(r.name for r in result.requirements
                                        if r.name in METRICS)]))
    param_cols = list(dict.fromkeys([*front.searched, *(r.name for r in result.requirements
                                                        if r.name not in METRICS)]))
    param_cols = [p for p in param_cols if p not in metric_cols]
    header = ["trial", *metric_cols, *param_cols, "verdict"]
    rows = []
    for m in sorted(front.members, key=lambda m: (m is not result.chosen, m.trial_id)):
        fails = result.failures[m.run_id]
        if m is result.chosen:
            verdict = "CHOSEN"
        else:
            verdict = "excluded: " + "; ".join(fails) if fails else "feasible"
        rows.append([m.trial_id, *(_show(m.value(c)) for c in metric_cols),
                     *(_show(m.params.get(c)) for c in param_cols), verdict])
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    lines = [f"Pareto front of sweep {front.name!r} ({len(front.members)} members; parent run "
             f"{front.parent_run_id}):",
             "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    reqs = ", ".join(f"'{r}'" for r in result.requirements) or "none"
    lines.append("")
    lines.append(f"requirements: {reqs}; pick by: {goal.direction.value} {goal.name}")
    chosen = result.chosen
    if chosen is None:
        lines.append("no front member meets every requirement:" if result.feasible == ()
                     else f"no feasible member reports {goal.name}:")
        lines += [f"  - {line}" for line in result.why_empty]
        return "\n".join(lines)
    others = [m.trial_id for m in result.feasible if m is not chosen]
    lines.append(f"chosen: trial {chosen.trial_id} (run {chosen.run_id}), {goal.name} "
                 f"{_show(chosen.value(goal.name))}, the "
                 f"{'highest' if goal.direction is Direction.MAX else 'lowest'} among "
                 f"{len(result.feasible)} feasible member(s)"
                 + (f" (also feasible: {', '.join(others)})" if others else ""))
    if chosen.evaluation.get("eval_description"):
        lines.append(f"measured with: {chosen.evaluation['eval_description']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the model


def member_config(front: SweepFront, member: FrontMember) -> TrainConfig:
    """The member's full TrainConfig: its params, else the ``config.json`` logged beside
    its model.

    Raises:
        ValueError: neither holds every TrainConfig field.
    """
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    config = {k: member.params[k] for k in fields if k in member.params}
    if len(config) < len(fields):
        from mlflow import MlflowClient

        with tempfile.TemporaryDirectory() as tmp, contextlib.suppress(Exception):
            path = MlflowClient(front.tracking_uri).download_artifacts(member.run_id,
                                                                       "config.json", tmp)
            config = {**json.loads(Path(path).read_text()), **config}
    missing = [k for k in fields if k not in config]
    if missing:
        raise ValueError(f"run {member.run_id}: expected the full TrainConfig in its params or "
                         f"config.json, missing {', '.join(missing)}")
    return TrainConfig.from_dict({k: config[k] for k in fields})


@contextlib.contextmanager
def _global_store(tracking_uri: str):
    """MLflow's global tracking URI set to ``tracking_uri`` for the block, then restored.

    A SQL store resolves ``models:/<model id>`` (logged models) through the global URI
    whatever client or ``tracking_uri=`` argument is used (a TODO in MLflow's
    ``sqlalchemy_store.py``); a tracking server resolves it on its side.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry
    from mlflow.tracking._tracking_service import utils as tracking

    # set_*_uri also export MLFLOW_*_URI; put back exactly what was there, env included.
    saved = (tracking._tracking_uri, registry._registry_uri,  # noqa: SLF001
             {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")})
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved[0])
        registry._registry_uri = saved[1]  # noqa: SLF001
        for key, value in saved[2].items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def load_model(model_uri: str, tracking_uri: str, *, allow_pickle: bool = False) -> Any:
    """The network of ``model_uri`` from the store (and registry) at ``tracking_uri``, on
    the CPU; MLflow's global tracking URI is left as it was.

    It is rebuilt from the model's ``tgo-checkpoint.pt`` with ``weights_only=True``: nothing
    in the store can run code here. A model without that file (logged by something else)
    is refused unless ``allow_pickle=True``, which unpickles ``mlflow.pytorch``'s
    ``data/model.pth``: only for a store you trust.
    """
    import mlflow.artifacts

    from tgo.checkpoint import load_model as load_checkpoint
    from tune.tracking.front_models import SAFE_CHECKPOINT

    with tempfile.TemporaryDirectory(prefix="tgo-model-") as tmp, _global_store(tracking_uri):
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp,
                                                    tracking_uri=tracking_uri,
                                                    registry_uri=tracking_uri)
        safe = Path(local) / SAFE_CHECKPOINT
        if safe.is_file():
            try:
                return load_checkpoint(safe)[0]
            except ValueError as exc:   # names the download folder, gone after this block
                raise ValueError(f"model: the {SAFE_CHECKPOINT} of {model_uri} (in "
                                 f"{tracking_uri}) is unusable: {exc}") from None
        if not allow_pickle:
            raise ValueError(f"model: {model_uri} has no {SAFE_CHECKPOINT} (weights only), "
                             "and loading its pickle could run code from the store; load it "
                             "with mlflow.pytorch.load_model only if you trust the store")
        import mlflow.pytorch

        return mlflow.pytorch.load_model(local, map_location="cpu")


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


# ----------------------------------------------------------------------------- registry


@dataclasses.dataclass(frozen=True)
class Registration:
    """A registered model version and the URI that loads it."""

    name: str
    version: str
    alias: str
    source: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{self.alias}"


def _tag(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:5000]


def register(result: PickResult, name: str, *, alias: str = DEPLOY_ALIAS,
             extra_tags: Mapping[str, Any] | None = None) -> Registration:
    """Register the chosen member's logged model as a new version of ``name``; alias it.

    Tags: the final metrics, the ``eval_*`` description of the attack behind them, the
    objectives, how it was picked and where it came from (sweep, trial, runs).

    Raises:
        ValueError: nothing was chosen, or the chosen member has no logged model.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    member, front = result.chosen, result.front
    if member is None:
        raise ValueError("register: no front member was chosen, nothing to register")
    if member.model_uri is None:
        raise ValueError(f"register: trial {member.trial_id} (run {member.run_id}) has no "
                         "logged model (tag tgo.model_logged is not 'true')")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][\w.\-]*", name):
        raise ValueError(f"register: expected a model name of letters, digits, '_', '.', '-', "
                         f"got {name!r}")
    client = MlflowClient(tracking_uri=front.tracking_uri, registry_uri=front.tracking_uri)
    try:
        client.create_registered_model(
            name, description="TGO spiking classifiers picked from sweep Pareto fronts")
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    tags = {**{k: v for k, v in member.metrics.items() if k in METRICS},
            **member.evaluation,
            "objectives": ",".join(o.label for o in front.objectives),
            "picked_by": f"{result.objective.direction.value} {result.objective.name}",
            "requirements": "; ".join(str(r) for r in result.requirements) or "none",
            "sweep": front.name, "experiment": front.experiment,
            "parent_run_id": front.parent_run_id, "trial_id": member.trial_id,
            "run_id": member.run_id, "spec_hash": front.spec_hash or "",
            **dict(extra_tags or {})}
    model_id = member.model_uri.split("/", 1)[1] if member.model_uri.startswith("models:/") \
        else None
    with _global_store(front.tracking_uri):  # the logged model is looked up globally
        version = client.create_model_version(
            name, member.model_uri, run_id=member.run_id,
            tags={k: _tag(v) for k, v in tags.items()}, model_id=model_id,
            description=f"trial {member.trial_id} of sweep {front.name}: "
                        + ", ".join(f"{k} {_show(member.metrics.get(k))}" for k in METRICS
                                    if k in member.metrics))
    client.set_registered_model_alias(name, alias, version.version)
    return Registration(name, str(version.version), alias, member.model_uri)


#: Keys :func:`read_deploy` requires in ``deploy.yaml`` (what :func:`deploy_document` writes).
_DEPLOY_KEYS = ("model_uri", "config", "sweep")


def read_deploy(path: str | os.PathLike) -> dict[str, Any]:
    """Read back the ``deploy.yaml`` that ``tgo pick`` wrote, checked.

    Returns the document with ``config`` as a :class:`TrainConfig`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not such a document (not UTF-8 YAML, cut short, foreign,
            or a key missing or of the wrong type); the message names the file.

    Example:
        >>> doc = read_deploy("deploy.yaml")                                  # doctest: +SKIP
        >>> model = load_model(doc["model_uri"], doc["sweep"]["tracking_uri"])  # doctest: +SKIP
    """
    import yaml

    path = Path(path)
    expected = (f"deploy: expected the YAML mapping that tgo pick writes (keys "
                f"{', '.join(_DEPLOY_KEYS)}, ...)")
    if not path.is_file():
        raise FileNotFoundError(f"deploy: no file at {path}")
    try:
        doc = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0][:200]
        raise ValueError(f"{expected}, got {path} (not UTF-8 YAML: {what})") from None
    if not isinstance(doc, dict):
        got = "an empty file" if doc is None else f"a YAML {type(doc).__name__}"
        raise ValueError(f"{expected}, got {path} ({got})")
    missing = [k for k in _DEPLOY_KEYS if k not in doc]
    if missing:
        raise ValueError(f"{expected}, got {path} (missing {', '.join(missing)}; cut short?)")
    sweep = doc["sweep"]
    if not isinstance(doc["model_uri"], str) or not isinstance(sweep, dict) \
            or not isinstance(sweep.get("tracking_uri"), str) \
            or not isinstance(doc["config"], dict):
        raise ValueError(f"{expected}, got {path} (model_uri, sweep.tracking_uri: text; "
                         "config: a mapping)")
    try:
        config = TrainConfig.from_dict(doc["config"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"deploy: expected a TrainConfig under config in {path}, got "
                         f"{exc}") from None
    return {**doc, "config": config}


def deploy_document(result: PickResult, config: TrainConfig, *,
                    registration: Registration | None = None,
                    check: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``deploy.yaml``: model URI, config, metrics, attack, provenance."""
    member, front = result.chosen, result.front
    if member is None:
        raise ValueError("deploy: no front member was chosen")
    model_uri = registration.uri if registration else member.model_uri
    doc: dict[str, Any] = {
        "model_uri": model_uri,
        "registered": None if registration is None else {
            "name": registration.name, "version": registration.version,
            "alias": registration.alias, "source": registration.source},
        "metrics": {k: member.metrics.get(k) for k in METRICS if k in member.metrics},
        "evaluation": dict(member.evaluation),
        "check": dict(check) if check else None,
        "picked_by": {"objective": result.objective.name,
                      "direction": result.objective.direction.value,
                      "require": [str(r) for r in result.requirements]},
        "sweep": {"name": front.name, "experiment": front.experiment,
                  "tracking_uri": front.tracking_uri, "parent_run_id": front.parent_run_id,
                  "spec_hash": front.spec_hash,
                  "objectives": {o.name: o.direction.value for o in front.objectives}},
        "trial": {"trial_id": member.trial_id, "run_id": member.run_id,
                  "logged_model": member.model_uri},
        "config": config.to_dict(),
    }
    return json.loads(json.dumps(doc, default=str))  # plain types only, for safe_dump
