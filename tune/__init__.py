"""tune: multi-objective sweeps of TGO SNNs on Ray Tune, searched and pruned by Optuna,
recorded in MLflow.

Entry points: :func:`tune.runner.run_sweep` / :func:`tune.runner.resume_sweep`, the spec in
:mod:`tune.spec`, and the ``tgo sweep`` / ``tgo pareto`` commands (:mod:`tune.cli`). Ray's
own module is always imported as ``from ray import tune as raytune`` here, so the two
``tune`` names never mix.
"""
