"""Ending a sweep before ``num_samples``: a plateau of the front, or an epoch budget.

:class:`SweepStopper` is a Ray Tune ``Stopper``. Ray asks it after every result whether the
whole experiment should end (:meth:`stop_all`); when it says yes, Ray tells the searcher it
is finished and stops the running trials (their child runs are closed as stopped by
:class:`tune.tracking.callback.MlflowSweepCallback`). :attr:`SweepStopper.reason` says why,
and the runner tags the parent run with it.

Example:
    >>> from tune.pareto import Objective
    >>> objs = [Objective("clean_acc"), Objective("robust_acc")]
    >>> stop = SweepStopper(objs, hypervolume_patience=2, min_improvement=0.01)
    >>> for i, (c, r) in enumerate([(0.9, 0.2), (0.8, 0.4), (0.9, 0.21), (0.85, 0.3)]):
    ...     _ = stop(f"t{i}", {"epoch": 6, "done_training": True, "clean_acc": c,
    ...                        "robust_acc": r})
    >>> stop.stop_all(), stop.reason
    (True, 'plateau: the hypervolume rose by 0.0055 over the last 2 finished trials (<= 0.01)')
"""

from __future__ import annotations

from typing import Any, Sequence

from ray.tune.stopper import Stopper

from tune.pareto import Objective, hypervolume, pareto_front

__all__ = ["SweepStopper"]


class SweepStopper(Stopper):
    """Stops the sweep on a hypervolume plateau or once ``max_epochs`` epochs are trained.

    Args:
        objectives: the sweep's objectives with their hypervolume references.
        hypervolume_patience: N: stop when the front's hypervolume rose by no more than
            ``min_improvement`` over the last N finished trials (None: never).
        min_improvement: see above (absolute hypervolume).
        max_epochs: stop once this many epochs were trained over all trials (None: never).

    Attributes:
        history: the front's hypervolume after each finished trial, in the order they
            finished.
        epochs: epochs trained so far over all trials (one per per-epoch result).
        reason: why the sweep was stopped; None while it runs on.
    """

    def __init__(self, objectives: Sequence[Objective], *,
                 hypervolume_patience: int | None = None, min_improvement: float = 0.0,
                 max_epochs: int | None = None) -> None:
        self.objectives = list(objectives)
        self.patience = hypervolume_patience
        self.min_improvement = float(min_improvement)
        self.max_epochs = max_epochs
        self.history: list[float] = []
        self.epochs = 0
        self.reason: str | None = None
        self._front: list[dict[str, Any]] = []
        self._seen: set[str] = set()

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        """Count the epoch; on a trial's final result, update the front. Never stops one
        trial alone."""
        if "epoch" in result and not result.get("done"):
            self.epochs += 1   # Ray repeats a trial's last result with done=True as it ends
        if result.get("done_training") and trial_id not in self._seen:
            self._seen.add(trial_id)
            point = {o.name: result.get(o.name) for o in self.objectives}
            self._front = pareto_front(self._front + [point], self.objectives)
            self.history.append(hypervolume(self._front, self.objectives))
        self._check()
        return False

    def _check(self) -> None:
        if self.reason is not None:
            return
        if self.max_epochs is not None and self.epochs >= self.max_epochs:
            self.reason = f"epoch budget: {self.epochs} epochs trained (max_epochs " \
                          f"{self.max_epochs})"
        elif self.patience is not None and len(self.history) > self.patience:
            rise = self.history[-1] - self.history[-1 - self.patience]
            if rise <= self.min_improvement:
                self.reason = (f"plateau: the hypervolume rose by {rise:.4f} over the last "
                               f"{self.patience} finished trials (<= {self.min_improvement:g})")

    def stop_all(self) -> bool:
        """Whether the sweep should end now."""
        return self.reason is not None
