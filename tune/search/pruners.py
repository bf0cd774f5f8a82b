"""Named pruners: the spec's ``pruner.type`` -> an Optuna pruner inside our scheduler.

Example:
    >>> from tune.spec import load_spec
    >>> scheduler = make_scheduler(load_spec("examples/digits-quick.yaml"))
    >>> scheduler.metrics
    ('val_clean_acc', 'val_robust_acc')
"""

from __future__ import annotations

from typing import Callable

import optuna

from tune.spec import PrunerName, SweepSpec

__all__ = ["PRUNERS", "make_scheduler"]


def _mo_asha(spec: SweepSpec):
    from tune.search.mo_asha import MOASHAPruner
    p = spec.pruner
    return MOASHAPruner(grace_period=p.grace_epochs, reduction_factor=p.eta,
                        max_resource=spec.epochs)


PRUNERS: dict[PrunerName, Callable[[SweepSpec], optuna.pruners.BasePruner]] = {
    PrunerName.MO_ASHA: _mo_asha,
    PrunerName.MEDIAN: lambda s: optuna.pruners.MedianPruner(
        n_startup_trials=s.pruner.eta, n_warmup_steps=s.pruner.n_warmup_epochs),
    PrunerName.PERCENTILE: lambda s: optuna.pruners.PercentilePruner(
        s.pruner.percentile, n_startup_trials=s.pruner.eta,
        n_warmup_steps=s.pruner.n_warmup_epochs),
    PrunerName.SUCCESSIVE_HALVING: lambda s: optuna.pruners.SuccessiveHalvingPruner(
        min_resource=s.pruner.grace_epochs, reduction_factor=s.pruner.eta),
    PrunerName.HYPERBAND: lambda s: optuna.pruners.HyperbandPruner(
        min_resource=s.pruner.grace_epochs, max_resource=s.epochs,
        reduction_factor=s.pruner.eta),
}


def make_scheduler(spec: SweepSpec):
    """The Ray Tune scheduler for ``spec``: our Optuna bridge, or None for ``pruner: none``."""
    from tune.search.scheduler import OptunaPruningScheduler

    kind = spec.pruner.type
    if kind is PrunerName.NONE:
        return None
    pruner = PRUNERS[kind](spec)
    if kind is PrunerName.MO_ASHA:
        metrics = [f"val_{name}" for name in spec.objective_names]
        modes = [d.value for d in spec.objectives.values()]
    else:
        metrics, modes = spec.pruner.metric, spec.pruner.mode.value
    return OptunaPruningScheduler(pruner, metrics, modes, study_name=f"{spec.name}-pruning")
