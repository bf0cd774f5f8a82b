"""The search: which configurations a sweep tries and which it stops early.

* :mod:`~tune.search.samplers`: the spec's Optuna sampler (``nsga2``, ``tpe``, ``random``);
* :mod:`~tune.search.pruners` + :mod:`~tune.search.mo_asha`: the spec's pruner
  (multi-objective ASHA, or Optuna's single-metric pruners);
* :mod:`~tune.search.scheduler`: the Ray Tune scheduler that asks the pruner after each
  epoch (:class:`OptunaPruningScheduler`);
* :mod:`~tune.search.stopping`: the Ray Tune stopper that ends a sweep on a plateau of the
  front or at an epoch budget (:class:`SweepStopper`, the spec's ``stop``);
* :mod:`~tune.search.searcher`: the Ray Tune searcher that asks the sampler for trials and
  tells it PRUNED / FAIL / COMPLETE (:class:`PruneAwareOptunaSearch`); its saved state is
  plain data (:mod:`~tune.search._study_records`).

:func:`make_searcher` and :func:`make_scheduler` build both from a spec.

Example:
    >>> from tune.spec import load_spec
    >>> spec = load_spec("examples/digits-quick.yaml")
    >>> scheduler = make_scheduler(spec)
    >>> type(make_searcher(spec, scheduler).study.sampler).__name__
    'NSGAIISampler'
"""

from __future__ import annotations

import functools

from tune.search.pruners import PRUNERS, make_scheduler
from tune.search.samplers import SAMPLERS, make_sampler
from tune.search.scheduler import OptunaPruningScheduler
from tune.search.searcher import PruneAwareOptunaSearch
from tune.search.stopping import SweepStopper
from tune.spec import SweepSpec

__all__ = ["PRUNERS", "SAMPLERS", "OptunaPruningScheduler", "PruneAwareOptunaSearch",
           "SweepStopper", "make_sampler", "make_scheduler", "make_searcher", "make_stopper"]


def make_searcher(spec: SweepSpec,
                  scheduler: OptunaPruningScheduler | None = None) -> PruneAwareOptunaSearch:
    """The spec's searcher: its sampler (built by a factory, so a saved sweep restores under
    another Optuna release), constraints, and the pruning ``scheduler`` whose decisions it
    tells the sampler."""
    return PruneAwareOptunaSearch(
        space=spec.optuna_space(), metric=list(spec.objective_names),
        mode=[d.value for d in spec.objectives.values()],
        sampler_factory=functools.partial(make_sampler, spec), scheduler=scheduler,
        constraints=spec.constraint_set())


def make_stopper(spec: SweepSpec, objectives) -> SweepStopper | None:
    """The spec's ``stop`` rule as a Ray Tune stopper, or None when it has none.
    ``objectives``: the sweep's :class:`tune.pareto.Objective` list (with references)."""
    stop = spec.stop
    if not stop.active:
        return None
    return SweepStopper(objectives, hypervolume_patience=stop.hypervolume_patience,
                        min_improvement=stop.min_improvement, max_epochs=stop.max_epochs)
