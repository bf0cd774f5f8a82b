"""Named Optuna samplers of a sweep spec: ``sampler.type`` -> a seeded Optuna sampler.

``gp`` is Optuna's ``GPSampler``: Gaussian-process Bayesian optimisation, with (log)
expected hypervolume improvement for several objectives, aware of the trials still running.
It and ``tpe`` draw their first ``SweepSpec.startup_trials`` at random, then model the rest.

Example:
    >>> from tune.spec import load_spec
    >>> make_sampler(load_spec("examples/digits-quick.yaml")).__class__.__name__
    'GPSampler'
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

from tune.spec import SamplerName, SweepSpec

__all__ = ["SAMPLERS", "make_sampler"]


def _nsga2(spec: SweepSpec, constraints: Callable | None) -> Any:
    from optuna.samplers import NSGAIISampler
    return NSGAIISampler(population_size=spec.population_size, seed=spec.sampler.seed,
                         constraints_func=constraints)


def _tpe(spec: SweepSpec, constraints: Callable | None) -> Any:
    from optuna.samplers import TPESampler
    return TPESampler(seed=spec.sampler.seed, multivariate=True, constraints_func=constraints,
                      n_startup_trials=spec.startup_trials)


#: Above this many trials ``gp`` warns: its model is cubic in the trials (``benchmarks/
#: scale.py`` here: about 2 s per suggestion at 300 finished trials, 17 s at 1,000).
GP_WARN_TRIALS = 300


def _gp(spec: SweepSpec, constraints: Callable | None) -> Any:
    from optuna.samplers import GPSampler
    if spec.num_samples > GP_WARN_TRIALS:
        warnings.warn(f"sampler.type: 'gp' fits a Gaussian process to every finished trial "
                      f"(cubic: about 17 s per suggestion at 1,000 trials); for "
                      f"num_samples {spec.num_samples} prefer 'nsga2' or 'tpe'", stacklevel=2)
    return GPSampler(seed=spec.sampler.seed, constraints_func=constraints,
                     n_startup_trials=spec.startup_trials, warn_independent_sampling=False)


def _random(spec: SweepSpec, constraints: Callable | None) -> Any:
    from optuna.samplers import RandomSampler
    return RandomSampler(seed=spec.sampler.seed)  # takes no constraints


#: Named sampler presets: ``SAMPLERS[name](spec, constraints_func) -> optuna sampler``.
SAMPLERS: dict[SamplerName, Callable[[SweepSpec, Callable | None], Any]] = {
    SamplerName.NSGA2: _nsga2,
    SamplerName.TPE: _tpe,
    SamplerName.GP: _gp,
    SamplerName.RANDOM: _random,
}


def make_sampler(spec: SweepSpec, constraints_func: Callable | None = None) -> Any:
    """The spec's Optuna sampler, seeded, with ``constraints_func`` where it is supported.

    Optuna 5 deprecates ``constraints_func`` (a FutureWarning) in favour of
    ``trial.set_constraint``; its samplers read ``trial.constraints`` either way, so
    pass None here when the caller sets constraints on the trials itself.

    """
    return SAMPLERS[spec.sampler.type](spec, constraints_func)
