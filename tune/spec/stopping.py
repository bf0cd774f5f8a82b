"""The ``stop`` and ``warm_start`` sections of a spec: when a sweep ends before
``num_samples``, and which earlier sweep seeds its sampler.

Example:
    >>> StopSpec(hypervolume_patience=6, min_improvement=0.002).active
    True
    >>> WarmStartSpec(from_sweep="digits-quick").tracking_uri is None
    True
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, Strict, StringConstraints, model_validator

from tune.spec._base import _Frozen
from tune.spec._errors import _Problems
from tune.spec.settings import MlflowSpec

__all__ = ["StopSpec", "WarmStartSpec"]


class StopSpec(_Frozen):
    """Ends a sweep early: on a plateau of the front, or at an epoch budget.

    Attributes:
        hypervolume_patience: end the sweep when the front's hypervolume (test-split
            objectives, the sweep's reference point) rose by no more than
            ``min_improvement`` over the last N trials that ended (finished or pruned);
            None: never on a plateau.
        min_improvement: the rise in hypervolume that counts as progress (absolute; two
            accuracies span a hypervolume of at most 1).
        max_epochs: end the sweep once its trials have trained this many epochs in all
            (pruned trials' epochs count); None: no budget.

    Running trials are stopped when the sweep ends (they are logged as stopped, not lost);
    the parent run's ``tgo.stop_reason`` tag says why it ended.
    """

    hypervolume_patience: Annotated[int, Strict(), Field(ge=1)] | None = None
    min_improvement: Annotated[float, Strict(), Field(ge=0)] = 0.0
    max_epochs: Annotated[int, Strict(), Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _improvement_needs_patience(self) -> "StopSpec":
        if self.min_improvement > 0 and self.hypervolume_patience is None:
            raise _Problems([(("min_improvement",), "expected only with hypervolume_patience"
                              f", got {self.min_improvement!r} without it")])
        return self

    @property
    def active(self) -> bool:
        """Whether this section can end a sweep at all."""
        return self.hypervolume_patience is not None or self.max_epochs is not None


class WarmStartSpec(MlflowSpec):
    """Seed the sampler with an earlier sweep's trials, read from MLflow.

    Attributes:
        from_sweep: the earlier sweep's name (its newest parent run is read).
        tracking_uri: its MLflow store; None: this sweep's store.
        experiment: its MLflow experiment; None: the sweep name.

    ``tracking_uri`` and ``experiment`` are checked as in ``mlflow``. The earlier sweep must
    search the same fields with the same distributions and optimise the same objectives, or
    the sweep refuses to start (a ``warm_start.*`` error).
    """

    from_sweep: Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Za-z0-9_.-]+$")]
