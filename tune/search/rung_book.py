"""MO-ASHA's per-rung records, kept up to date incrementally from an Optuna study.

A rung decision compares the judged trial with every other trial that reached the rung.
Reading every trial of the study and parsing its ``mo_values`` for each decision made a
decision O(n) in Python and a sweep O(n^2) (issue 14: 47 ms per decision at 1,000 trials).
:class:`RungBook` reads a trial again only while it can still change: trials it has not
seen, and trials that were running (or waiting) when it last looked. A finished (COMPLETE
or PRUNED) trial is final; a trial that FAILs leaves every rung (a requeued Tune trial gets
a new mirror trial and must not count twice). The values at each rung sit in a growing
numpy array, so a decision costs one array slice plus the ranking.

Example:
    >>> import optuna
    >>> study = optuna.create_study(directions=["maximize", "maximize"])
    >>> t = study.ask(); t.set_user_attr("mo_values", {"1": [0.5, 0.2], "3": [0.6, 0.3]})
    >>> book = RungBook(study._storage, study._study_id, 2)
    >>> book.sync(study.get_trials(deepcopy=False), lambda last: [1, 3, 9][:1 + (last >= 3)])
    >>> book.peers(3, trial_number=99).tolist()
    [[0.6, 0.3]]
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Sequence

import numpy as np
from optuna.trial import FrozenTrial, TrialState

__all__ = ["RungBook", "step_values"]

MO_VALUES_ATTR = "mo_values"
"""User attribute holding ``{"<step>": [values...]}`` of a multi-objective mirror trial."""
_FINAL = (TrialState.COMPLETE, TrialState.PRUNED)


def step_values(trial: FrozenTrial) -> dict[int, tuple[float, ...]]:
    """The trial's per-step values: the ``mo_values`` user attr, else its intermediate values."""
    raw = trial.user_attrs.get(MO_VALUES_ATTR)
    if raw is not None:
        return {int(step): tuple(float(v) for v in vals) for step, vals in raw.items()}
    return {int(step): (float(v),) for step, v in trial.intermediate_values.items()}


class _Rung:
    """Values at one rung: rows of a growing array, one per trial that reached it."""

    def __init__(self, n_objectives: int) -> None:
        self.values = np.empty((16, n_objectives))
        self.numbers = np.empty(16, dtype=np.int64)
        self.row: dict[int, int] = {}   # trial number -> row

    def put(self, number: int, values: Sequence[float]) -> None:
        row = self.row.get(number)
        if row is None:
            row = self.row[number] = len(self.row)
            if row == len(self.numbers):   # full: double
                self.values = np.concatenate([self.values, np.empty_like(self.values)])
                self.numbers = np.concatenate([self.numbers, np.empty_like(self.numbers)])
            self.numbers[row] = number
        self.values[row] = values

    def drop(self, number: int) -> None:
        row = self.row.pop(number, None)
        if row is None:
            return
        last = len(self.row)   # move the last row into the hole
        if row != last:
            moved = int(self.numbers[last])
            self.values[row], self.numbers[row] = self.values[last], moved
            self.row[moved] = row

    def peers(self, exclude: int) -> np.ndarray:
        """Values of every trial but ``exclude``, in trial-number order (ties: lower wins)."""
        n = len(self.row)
        numbers, values = self.numbers[:n], self.values[:n]
        order = np.argsort(numbers, kind="stable")
        order = order[numbers[order] != exclude]
        return values[order]


class RungBook:
    """Every trial's values at every rung it reached, for one study.

    Args:
        storage, study_id: the study's storage and id; :meth:`belongs_to` tells whether a
            study is this one (the pruner keeps one book and starts a new one when asked
            about another study). The storage is held weakly: a book never keeps a finished
            study alive, and a new study at a recycled address is not mistaken for it.
        n_objectives: values per step.
    """

    def __init__(self, storage: Any, study_id: int, n_objectives: int) -> None:
        self._storage = weakref.ref(storage)
        self._study_id = study_id
        self.n_objectives = n_objectives
        self._rungs: dict[int, _Rung] = {}
        self._seen = 0                # trials numbered below this were read at least once
        self._live: set[int] = set()  # read while running or waiting: may change still
        self._reached: dict[int, list[int]] = {}   # trial number -> rung steps it is in

    def belongs_to(self, storage: Any, study_id: int) -> bool:
        """Whether this book is about the study ``study_id`` of ``storage``."""
        return self._storage() is storage and self._study_id == study_id

    def sync(self, trials: Sequence[FrozenTrial],
             rung_steps: Callable[[int], list[int]]) -> None:
        """Read the trials that are new or were live at the last sync (``trials`` is the
        study's list, indexed by trial number)."""
        if trials and trials[-1].number != len(trials) - 1:   # not indexed by number
            raise ValueError("trials: expected the study's full list, indexed by number")
        fresh = list(trials[self._seen:])
        again = [trials[n] for n in sorted(self._live) if n < self._seen]
        self._seen = max(self._seen, len(trials))
        for trial in again + fresh:
            self._read(trial, rung_steps)

    def _read(self, trial: FrozenTrial, rung_steps: Callable[[int], list[int]]) -> None:
        number = trial.number
        for rung_step in self._reached.pop(number, []):
            self._rungs[rung_step].drop(number)
        self._live.discard(number)
        if trial.state == TrialState.FAIL:
            return
        if trial.state not in _FINAL:
            self._live.add(number)
        steps = step_values(trial)
        if not steps:
            return
        ordered = sorted(steps)
        reached = []
        for rung_step in rung_steps(ordered[-1]):   # all <= the last step
            first = ordered[int(np.searchsorted(ordered, rung_step))]   # first step >= rung
            rung = self._rungs.get(rung_step)
            if rung is None:
                rung = self._rungs[rung_step] = _Rung(self.n_objectives)
            rung.put(number, steps[first])
            reached.append(rung_step)
        self._reached[number] = reached

    def peers(self, rung_step: int, trial_number: int) -> np.ndarray:
        """(k x m) values of the other trials at ``rung_step``, in trial-number order."""
        rung = self._rungs.get(rung_step)
        if rung is None:
            return np.empty((0, self.n_objectives))
        return rung.peers(trial_number)

    def describe(self) -> dict[str, Any]:
        """Counts for logs and tests: trials seen, live, and trials per rung step."""
        return {"seen": self._seen, "live": len(self._live),
                "rungs": {step: len(r.row) for step, r in sorted(self._rungs.items())}}
