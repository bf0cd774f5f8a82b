"""A Ray Tune scheduler that stops trials when an Optuna pruner says so.

Ray's ``OptunaSearch`` gives its study a no-op pruner, so Optuna's pruners never act inside
Tune, and Optuna cannot prune a multi-objective study at all. This scheduler mirrors each
trial's per-epoch results (``val_X``, the stand-ins of the objectives ``X``) into its own
in-memory Optuna study, separate from the sampler's, asks the pruner after every epoch and
returns ``STOP`` when it says prune. One metric works with any Optuna pruner (Median,
Percentile, SuccessiveHalving, Hyperband: ``trial.report(value, step=epoch)`` then
``trial.should_prune()``); several metrics need a pruner with
``supports_multi_objective = True`` such as :class:`~tune.search.mo_asha.MOASHAPruner`, and their
values go to the ``mo_values`` user attribute. Steps are the 1-based ``epoch`` of the result.

Which trials were pruned, at which epoch and rung, is kept in :attr:`pruned`; the searcher
(:class:`~tune.search.PruneAwareOptunaSearch`) reads it to tell its sampler ``PRUNED``. Tune
never saves a scheduler, so :meth:`state_dict` returns everything needed to replay the
mirror study (the searcher stores it in its own checkpoint), and :meth:`rebuild` replays
per-epoch results read back from the experiment directory.

A result with ``done_training=True`` is recorded but never judged: a trial that trained all
its epochs is not stopped before its final evaluation reaches the searcher.

Example:
    >>> from ray import tune as raytune
    >>> from tune.search.mo_asha import MOASHAPruner
    >>> sched = OptunaPruningScheduler(MOASHAPruner(grace_period=1, reduction_factor=2),
    ...                                metric=["val_clean_acc", "val_spike_rate"],
    ...                                mode=["max", "min"])
    >>> cfg = raytune.TuneConfig(scheduler=sched)
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from typing import Any, Iterable, Mapping, Sequence

import optuna
from optuna.pruners import BasePruner
from optuna.trial import TrialState
from ray import tune as raytune
from ray.tune.experiment import Trial

from tgo.config import as_enum
from tune.search.mo_asha import MO_VALUES_ATTR, decision_key
from tune.objectives import Direction

__all__ = ["OptunaPruningScheduler", "PruneInfo"]

_log = logging.getLogger(__name__)
_STATE_FORMAT = 1
_TrialScheduler = raytune.schedulers.TrialScheduler


@dataclasses.dataclass(frozen=True)
class PruneInfo:
    """Where and why a trial was pruned.

    Attributes:
        epoch: the epoch (1-based) of the result that triggered the stop.
        rung: the successive-halving rung (0 = first), or None for pruners without rungs.
        reason: a readable account, e.g. ``"MOASHAPruner at epoch 2 (rung 1: not in the top
            2 of 4)"``.
    """

    epoch: int
    rung: int | None
    reason: str


class OptunaPruningScheduler(_TrialScheduler):
    """Stop Ray Tune trials with an Optuna pruner, on one metric or several.

    Args:
        pruner: an Optuna pruner (one metric) or one with ``supports_multi_objective``.
        metric: the per-epoch result key(s) the pruner judges, e.g. ``"val_robust_acc"``.
            Independent of the ``TuneConfig``/searcher objective, which it ignores.
        mode: ``"max"``/``"min"`` per metric.
        time_attr: the result key holding the 1-based step (epoch).
        study_name: name of the mirror study (Hyperband hashes it into bracket ids).

    Example:
        >>> import optuna
        >>> sched = OptunaPruningScheduler(optuna.pruners.MedianPruner(n_startup_trials=2),
        ...                                metric="val_clean_acc", mode="max")
        >>> sched.decide("t1", {"epoch": 1, "val_clean_acc": 0.5})
        'CONTINUE'
    """

    _supports_buffered_results = False

    def __init__(self, pruner: BasePruner, metric: str | Sequence[str],
                 mode: str | Sequence[str], *, time_attr: str = "epoch",
                 study_name: str = "tune-pruning-mirror") -> None:
        super().__init__()
        if not isinstance(pruner, BasePruner):
            raise ValueError(f"pruner: expected an optuna.pruners.BasePruner, got {pruner!r}")
        metrics = [metric] if isinstance(metric, str) else list(metric)
        modes = [mode] if isinstance(mode, str) else list(mode)
        if not metrics or not all(isinstance(m, str) and m for m in metrics):
            raise ValueError(f"metric: expected a non-empty name or list of names, got {metric!r}")
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"metric: expected unique names, got {metrics}")
        if len(modes) != len(metrics):
            raise ValueError(f"mode: expected one mode per metric ({len(metrics)}), got {mode!r}")
        directions = [as_enum(Direction, m, "mode") for m in modes]
        if len(metrics) > 1 and not getattr(pruner, "supports_multi_objective", False):
            raise ValueError(
                f"pruner: expected a multi-objective pruner (e.g. MOASHAPruner) for "
                f"{len(metrics)} metrics, got {type(pruner).__name__}")
        self._pruner_template = copy.deepcopy(pruner)
        self._metrics = tuple(metrics)
        self._modes = tuple(d.value for d in directions)
        self._time_attr = time_attr
        self._study_name = study_name
        self._reset()

    # ------------------------------------------------------------------ properties

    @property
    def metrics(self) -> tuple[str, ...]:
        """The per-epoch result keys judged by the pruner."""
        return self._metrics

    @property
    def modes(self) -> tuple[str, ...]:
        """``"max"``/``"min"`` per metric."""
        return self._modes

    @property
    def pruned(self) -> dict[str, PruneInfo]:
        """Ray trial id -> :class:`PruneInfo` of every trial this scheduler stopped."""
        return dict(self._pruned)

    def prune_record(self, trial_id: str) -> PruneInfo | None:
        """The :class:`PruneInfo` of ``trial_id`` if this scheduler stopped it, else None."""
        return self._pruned.get(trial_id)

    @property
    def study(self) -> optuna.study.Study:
        """The mirror study (read it, do not tell its trials)."""
        return self._study

    def summary(self) -> str:
        """``"12 epoch records of 5 trials, 2 pruned"``: what the rung decisions rest on."""
        results = [e for e in self._events if e[0] == "result"]
        trials = {e[1] for e in results}
        return (f"{len(results)} epoch records of {len(trials)} trials, "
                f"{len(self._pruned)} pruned")

    def is_pruned(self, trial_id: str) -> bool:
        """True when this scheduler stopped trial ``trial_id``."""
        return trial_id in self._pruned

    # ------------------------------------------------------------------ core logic

    def _reset(self) -> None:
        self._pruner = copy.deepcopy(self._pruner_template)
        directions = ["maximize" if m == "max" else "minimize" for m in self._modes]
        self._study = optuna.create_study(
            directions=directions, pruner=self._pruner, study_name=self._study_name,
            sampler=optuna.samplers.RandomSampler(seed=0))
        self._mirror: dict[str, optuna.trial.Trial] = {}
        self._steps: dict[str, dict[int, list[float]]] = {}
        self._ended: dict[str, TrialState] = {}
        self._pruned: dict[str, PruneInfo] = {}
        self._events: list[list[Any]] = []

    def decide(self, trial_id: str, result: Mapping[str, Any]) -> str:
        """Record one per-epoch result and return ``"CONTINUE"`` or ``"STOP"``.

        Results without the step or one of the metrics are passed over (``CONTINUE``).
        A step already recorded for this trial (a restarted trial) is not judged again.
        """
        if trial_id in self._ended:
            return self.STOP if trial_id in self._pruned else self.CONTINUE
        step = result.get(self._time_attr)
        values = [result.get(m) for m in self._metrics]
        if step is None or any(v is None for v in values):
            return self.CONTINUE
        step = _as_step(step, self._time_attr)
        values = [_as_value(v, m) for v, m in zip(values, self._metrics)]
        done = bool(result.get("done_training", False))
        self._events.append(["result", trial_id, step, values, done])
        return self._observe(trial_id, step, values, done)

    def _observe(self, trial_id: str, step: int, values: list[float], done: bool) -> str:
        trial = self._mirror.get(trial_id)
        if trial is None:
            trial = self._mirror[trial_id] = self._study.ask()
            trial.set_user_attr("ray_trial_id", trial_id)
            self._steps[trial_id] = {}
        steps = self._steps[trial_id]
        if step in steps:
            return self.CONTINUE
        steps[step] = values
        if len(values) == 1:
            trial.report(values[0], step)
        else:
            trial.set_user_attr(MO_VALUES_ATTR, {str(s): v for s, v in steps.items()})
        if done:
            return self.CONTINUE
        frozen = self._study.get_trials(deepcopy=False)[trial.number]
        if not self._pruner.prune(self._study, frozen):
            return self.CONTINUE
        self._study.tell(trial, state=TrialState.PRUNED)
        self._ended[trial_id] = TrialState.PRUNED
        self._pruned[trial_id] = self._prune_info(trial.number, step)
        return self.STOP

    def _prune_info(self, number: int, step: int) -> PruneInfo:
        attrs = self._study.get_trials(deepcopy=False)[number].system_attrs
        name = type(self._pruner).__name__
        judged = sorted(int(k.rsplit("_", 1)[1]) for k in attrs
                        if k.startswith(decision_key(0)[:-1]) or k.startswith("completed_rung_"))
        rung = judged[-1] if judged else None
        reason = f"{name} at epoch {step}"
        record = attrs.get(decision_key(rung)) if rung is not None else None
        if record:
            reason += f" (rung {rung}: not in the top {record['keep']} of {record['n']})"
        elif rung is not None:
            reason += f" (rung {rung})"
        return PruneInfo(epoch=step, rung=rung, reason=reason)

    def finish(self, trial_id: str, error: bool = False) -> None:
        """End the mirror trial once: COMPLETE with its last values, or FAIL.

        A no-op for a trial already ended (Tune calls ``on_trial_complete`` after a STOP).
        """
        if trial_id in self._ended or trial_id not in self._mirror:
            return
        self._events.append(["end", trial_id, bool(error)])
        self._end(trial_id, error)

    def _end(self, trial_id: str, error: bool) -> None:
        trial = self._mirror.get(trial_id)
        steps = self._steps.get(trial_id)
        if trial is None or not steps:
            return
        values = steps[max(steps)]
        if error or not all(math.isfinite(v) for v in values):
            self._study.tell(trial, state=TrialState.FAIL)
            self._ended[trial_id] = TrialState.FAIL
        else:
            self._study.tell(trial, values)
            self._ended[trial_id] = TrialState.COMPLETE

    def _forget_failed(self, trial_id: str) -> None:
        """A failed trial is re-added (requeued or resumed): mirror it afresh."""
        if self._ended.get(trial_id) == TrialState.FAIL:
            self._events.append(["forget", trial_id])
            self._forget(trial_id)

    def _forget(self, trial_id: str) -> None:
        self._ended.pop(trial_id, None)
        self._mirror.pop(trial_id, None)
        self._steps.pop(trial_id, None)

    # ------------------------------------------------------------------ persistence

    def state_dict(self) -> dict[str, Any]:
        """Plain-data state (JSON-able): the ordered event log and the prune records."""
        return {
            "format": _STATE_FORMAT,
            "metrics": list(self._metrics),
            "modes": list(self._modes),
            "events": copy.deepcopy(self._events),
            "pruned": {t: dataclasses.asdict(p) for t, p in self._pruned.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace this scheduler's state by replaying ``state``'s event log.

        The replay asks a fresh copy of the pruner again, in the original order, so the
        mirror study (and pruner bookkeeping such as SuccessiveHalving's rung attributes)
        comes back as it was. The saved prune records win over any replay that differs.
        """
        if state.get("format") != _STATE_FORMAT:
            raise ValueError(f"state['format']: expected {_STATE_FORMAT}, "
                             f"got {state.get('format')!r}")
        got = (tuple(state.get("metrics", ())), tuple(state.get("modes", ())))
        if got != (self._metrics, self._modes):
            raise ValueError(f"state: expected metrics/modes {self._metrics}/{self._modes}, "
                             f"got {got[0]}/{got[1]}")
        self._reset()
        for event in state["events"]:
            kind, trial_id = event[0], event[1]
            self._events.append(copy.deepcopy(list(event)))
            if kind == "result":
                if trial_id not in self._ended:
                    self._observe(trial_id, int(event[2]), [float(v) for v in event[3]],
                                  bool(event[4]))
            elif kind == "end":
                if trial_id not in self._ended:
                    self._end(trial_id, bool(event[2]))
            elif kind == "forget":
                self._forget(trial_id)
            else:
                raise ValueError(f"state['events']: expected result/end/forget, got {kind!r}")
        saved = {t: PruneInfo(**p) for t, p in state.get("pruned", {}).items()}
        if saved != self._pruned:
            _log.warning("Replayed prune decisions differ from the saved ones; keeping the "
                         "saved records (%d vs %d pruned).", len(saved), len(self._pruned))
            self._pruned = saved

    def rebuild(self, results: Iterable[Mapping[str, Any]]
                | Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Rebuild the state from Tune's recorded per-epoch results (replaces the state).

        Args:
            results: either a flat iterable of results, each carrying ``trial_id`` (Tune
                adds it), in the order Tune processed them -- this reproduces the original
                decisions exactly -- or a mapping trial id -> that trial's results, replayed
                epoch by epoch across trials (the interleaving is then approximate). A
                trial whose result has ``done_training`` is completed right after it;
                others stay running unless the replay prunes them.

        Example:
            >>> import optuna
            >>> s = OptunaPruningScheduler(optuna.pruners.NopPruner(), "val_acc", "max")
            >>> s.rebuild({"a": [{"epoch": 1, "val_acc": 0.5}]}); s.pruned
            {}
        """
        if isinstance(results, Mapping):
            flat = [dict(r, trial_id=tid) for tid, rs in results.items() for r in rs]
            order = {tid: i for i, tid in enumerate(results)}
            flat.sort(key=lambda r: (_as_step(r.get(self._time_attr, 0), self._time_attr),
                                     order[r["trial_id"]]))
            results = flat
        self._reset()
        for result in results:
            if "trial_id" not in result:
                raise ValueError(f"results: expected each result to carry 'trial_id', "
                                 f"got keys {sorted(result)}")
            trial_id = str(result["trial_id"])
            self.decide(trial_id, result)
            if result.get("done_training"):
                self.finish(trial_id)

    def __getstate__(self) -> dict[str, Any]:
        keep = ("_pruner_template", "_metrics", "_modes", "_time_attr", "_study_name")
        return {"config": {k: self.__dict__[k] for k in keep}, "state": self.state_dict()}

    def __setstate__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data["config"])
        self.load_state_dict(data["state"])

    # ------------------------------------------------------------------ Tune hooks

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Accept Tune's properties; the pruned metrics are the ones given at construction."""
        return True

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        self._forget_failed(trial.trial_id)

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self.finish(trial.trial_id, error=True)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        return self.decide(trial.trial_id, result)

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        self.finish(trial.trial_id)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self.finish(trial.trial_id, error=True)

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        for status in (Trial.PENDING, Trial.PAUSED):
            for trial in tune_controller.get_trials():
                if trial.status == status:
                    return trial
        return None

    def debug_string(self) -> str:
        on = ", ".join(f"{m} ({d})" for m, d in zip(self._metrics, self._modes))
        return (f"Using OptunaPruningScheduler ({type(self._pruner).__name__} on {on}): "
                f"{len(self._pruned)} of {len(self._mirror)} trials pruned.")


def _as_step(value: Any, field: str) -> int:
    ok = (not isinstance(value, bool) and isinstance(value, (int, float))
          and math.isfinite(value) and value == int(value) and value >= 0)
    if not ok:
        raise ValueError(f"{field}: expected a non-negative integer step, got {value!r}")
    return int(value)


def _as_value(value: Any, field: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{field}: expected a number, got {value!r}") from None
