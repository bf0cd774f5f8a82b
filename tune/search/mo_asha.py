"""Multi-objective ASHA as an Optuna pruner (Schmucker et al. 2021, "Multi-objective ASHA").

Optuna cannot ``report`` a vector per step, so the values of a multi-objective trial live
in a user attribute, ``trial.user_attrs["mo_values"] = {"<step>": [v1, v2, ...]}``, which
:class:`~tune.search.scheduler.OptunaPruningScheduler` keeps up to date. A single-objective trial's
``intermediate_values`` work too, so the pruner also runs on ordinary Optuna studies.

Rungs sit at steps ``grace_period * reduction_factor**k``. When a trial first reports a
step at or past rung ``k`` it is judged against every trial that already reached that rung
(asynchronous, like ASHA): all ``n`` rung values are ranked by non-dominated sorting
(directions from ``study.directions``); the front that straddles the cut is ordered by
NSGA-II crowding distance (more isolated first) or by a greedy epsilon-net; the first
``max(1, ceil(n / reduction_factor))`` survive and the trial is pruned if it is not among
them. With fewer than ``min_trials_at_rung`` trials at a rung nothing is pruned. Exact ties
(equal crowding distance) go to the trials that reached the rung earlier. Trials in any
state count (a pruned trial still reached its rungs) except FAIL: a failed Tune trial that
is requeued gets a new mirror trial and must not count twice.

Each judgement is written to the trial's system attribute ``"mo_asha:rung_<k>"`` (as Optuna's
own SuccessiveHalvingPruner does), so the scheduler can tell at which rung and why.

Example:
    >>> import optuna
    >>> pruner = MOASHAPruner(grace_period=1, reduction_factor=2)
    >>> pruner.rung_steps(10)
    [1, 2, 4, 8]
    >>> study = optuna.create_study(directions=["maximize", "minimize"], pruner=pruner)
"""

from __future__ import annotations

import enum
import math
from typing import Any, Sequence

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from tgo.config import as_enum
from tune.pareto import Objective, crowding_rows, rank_rows
from tune.search.rung_book import MO_VALUES_ATTR, RungBook, step_values as _step_values

__all__ = ["MO_VALUES_ATTR", "MOASHAPruner", "TieBreak", "decision_key", "select_survivors"]


_DECISION_PREFIX = "mo_asha:rung_"


class TieBreak(str, enum.Enum):
    """How the front that straddles the cut is thinned."""

    CROWDING = "crowding"
    EPSILON_NET = "epsilon_net"


def decision_key(rung: int) -> str:
    """System attribute name of the judgement at ``rung`` (e.g. ``"mo_asha:rung_1"``)."""
    return f"{_DECISION_PREFIX}{rung}"


def _objectives(directions: Sequence[StudyDirection]) -> list[Objective]:
    return [
        Objective(f"f{i}", "max" if d == StudyDirection.MAXIMIZE else "min")
        for i, d in enumerate(directions)
    ]


def _epsilon_net_order(values: Any, idx: Any, first_max: bool, scale: Any, room: int) -> list[int]:
    """The first ``room`` of ``idx`` in greedy farthest-point order (start: the best on the
    first objective; ties go to the lower index), in objective space scaled by ``scale``."""
    import numpy as np

    lo, hi = scale
    span = np.where(hi > lo, hi - lo, 1.0)
    norm = np.where(hi > lo, (values[idx] - lo) / span, 0.0)
    first = np.lexsort((idx, -values[idx, 0] if first_max else values[idx, 0]))[0]
    order = [int(first)]
    gap = np.full(len(idx), np.inf)
    taken = np.zeros(len(idx), dtype=bool)
    taken[first] = True
    while len(order) < min(room, len(idx)):
        gap = np.minimum(gap, np.sqrt(((norm - norm[order[-1]]) ** 2).sum(axis=1)))
        best = int(np.argmax(np.where(taken, -np.inf, gap)))   # first max = lowest index
        taken[best] = True
        order.append(best)
    return [int(idx[k]) for k in order]


def select_survivors(
    points: Sequence[Sequence[float]],
    directions: Sequence[StudyDirection],
    keep: int,
    tie_break: TieBreak | str = TieBreak.CROWDING,
) -> set[int]:
    """Indices of the ``keep`` points that survive a rung (lower index wins exact ties).

    Points with a NaN or infinite value rank behind every valid point. Whole fronts are
    kept while they fit (ranks from :func:`tune.pareto.rank_rows`, moocore's O(n log n)
    sort); the front that straddles the cut is thinned by crowding or the epsilon-net.

    Example:
        >>> up = [StudyDirection.MAXIMIZE, StudyDirection.MAXIMIZE]
        >>> sorted(select_survivors([[1, 0], [0, 1], [0.5, 0.5], [0, 0]], up, keep=3))
        [0, 1, 2]
    """
    import numpy as np

    tie_break = as_enum(TieBreak, tie_break, "tie_break")
    maximise = np.array([d == StudyDirection.MAXIMIZE for d in directions])
    values = np.asarray(points, dtype=float).reshape(len(points), len(directions))
    valid = np.isfinite(values).all(axis=1)
    ranks = rank_rows(np.where(maximise, values, -values), valid)
    if keep >= len(values):
        return set(range(len(values)))
    if keep <= 0:
        return set()
    counts = np.bincount(ranks)
    cut = int(np.searchsorted(np.cumsum(counts), keep, side="right"))   # straddling front
    kept = np.flatnonzero(ranks < cut)
    room = keep - len(kept)
    if room <= 0:
        return set(kept.tolist())
    front = np.flatnonzero(ranks == cut)
    if tie_break is TieBreak.CROWDING:
        dist = crowding_rows(values[front], valid[front])
        order = front[np.lexsort((front, -dist))]
        chosen = order[:room].tolist()
    else:
        good, bad = front[valid[front]], front[~valid[front]]
        chosen = []
        if len(good):
            scale = (values[valid].min(axis=0), values[valid].max(axis=0))
            chosen = _epsilon_net_order(values, good, bool(maximise[0]), scale, room)
        chosen += bad[:room - len(chosen)].tolist()
    return set(kept.tolist()) | set(chosen)


def _value_at_rung(
    steps: dict[int, tuple[float, ...]], rung_step: int
) -> tuple[int, tuple[float, ...]] | None:
    """(first reported step >= rung_step, its values), or None if the rung is not reached."""
    reached = [s for s in steps if s >= rung_step]
    if not reached:
        return None
    first = min(reached)
    return first, steps[first]


class MOASHAPruner(BasePruner):
    """Asynchronous successive halving on several objectives (MO-ASHA).

    Args:
        grace_period: first rung, in steps (epochs); a trial is never pruned before it.
        reduction_factor: eta; rungs at ``grace_period * eta**k`` and ``ceil(n / eta)`` of
            the ``n`` trials at a rung survive.
        min_trials_at_rung: do not prune at a rung reached by fewer trials (counting the
            one being judged); ``None`` means ``reduction_factor``.
        tie_break: ``"crowding"`` (NSGA-II crowding distance, keep the more isolated) or
            ``"epsilon_net"`` (greedy farthest-point order in normalised objective space).
        max_resource: if given, no rung at or beyond this step (a trial that trained all
            its epochs is not judged at its last one).

    Example:
        >>> pruner = MOASHAPruner(grace_period=2, reduction_factor=3, tie_break="epsilon_net")
        >>> pruner.rung_steps(20), pruner.rung_of(6)
        ([2, 6, 18], 1)
    """

    supports_multi_objective = True

    def __init__(self, grace_period: int = 1, reduction_factor: int = 2,
                 min_trials_at_rung: int | None = None,
                 tie_break: TieBreak | str = TieBreak.CROWDING,
                 max_resource: int | None = None) -> None:
        _check_int("grace_period", grace_period, 1)
        _check_int("reduction_factor", reduction_factor, 2)
        if min_trials_at_rung is None:
            min_trials_at_rung = reduction_factor
        _check_int("min_trials_at_rung", min_trials_at_rung, 1)
        if max_resource is not None:
            _check_int("max_resource", max_resource, grace_period + 1)
        self.grace_period = grace_period
        self.reduction_factor = reduction_factor
        self.min_trials_at_rung = min_trials_at_rung
        self.tie_break = as_enum(TieBreak, tie_break, "tie_break")
        self.max_resource = max_resource
        self._book: RungBook | None = None   # rung records of the last study judged

    def rung_steps(self, up_to: int) -> list[int]:
        """Rung steps ``grace * eta**k`` that are <= ``up_to`` (and < ``max_resource``)."""
        limit = up_to if self.max_resource is None else min(up_to, self.max_resource - 1)
        steps, step = [], self.grace_period
        while step <= limit:
            steps.append(step)
            step *= self.reduction_factor
        return steps

    def rung_of(self, step: int) -> int | None:
        """``k`` if ``step`` is exactly rung ``k``'s step, else None."""
        steps = self.rung_steps(step)
        return len(steps) - 1 if steps and steps[-1] == step else None

    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        """Judge ``trial`` at every rung its newest step is the first to reach."""
        steps = _step_values(trial)
        if not steps:
            return False
        last = max(steps)
        book = None
        for rung, rung_step in enumerate(self.rung_steps(last)):
            own = _value_at_rung(steps, rung_step)
            if own is None or own[0] != last:
                continue  # judged at this rung on an earlier step
            if book is None:
                book = self._book_of(study)
                book.sync(study.get_trials(deepcopy=False), self.rung_steps)
            peers = book.peers(rung_step, trial.number)
            points = np.vstack([peers, np.asarray(own[1], dtype=float)[None, :]])
            n = len(points)
            if n < self.min_trials_at_rung:
                continue
            keep = max(1, math.ceil(n / self.reduction_factor))
            pruned = (n - 1) not in select_survivors(points, study.directions, keep,
                                                     self.tie_break)
            record: dict[str, Any] = {"step": last, "rung_step": rung_step, "n": n,
                                      "keep": keep, "pruned": pruned}
            study._storage.set_trial_system_attr(trial._trial_id, decision_key(rung), record)
            if pruned:
                return True
        return False

    def _book_of(self, study: optuna.study.Study) -> RungBook:
        book = getattr(self, "_book", None)   # absent in a pruner pickled before the book
        if book is None or not book.belongs_to(study._storage, study._study_id):
            book = self._book = RungBook(study._storage, study._study_id, len(study.directions))
        return book

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_book": None}   # a cache: rebuilt from the study on use


def _check_int(field: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{field}: expected an int >= {minimum}, got {value!r}")
