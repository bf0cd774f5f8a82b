"""tgo: Threshold Guarding Optimization (TGO) for spiking neural networks.

The library trains and evaluates TGO SNNs and imports without Ray, Optuna or MLflow:

- :mod:`tgo.neurons`: ``NoisyLIFNode`` and ``recording`` / ``noise`` switches;
- :mod:`tgo.losses`: ``threshold_guard_loss`` and the lambda schedule;
- :mod:`tgo.models`, :mod:`tgo.data`: models and data sets by name;
- :mod:`tgo.train`: ``fit(config, report)``; :mod:`tgo.config`: ``TrainConfig``;
- :mod:`tgo.attacks`, :mod:`tgo.evaluate`, :mod:`tgo.diagnostics`: robustness numbers that
  say which attack produced them;
- :mod:`tgo.worst_case`, :mod:`tgo.final_eval`: the per-example worst case over an attack
  set, and the final test evaluation that reports it as ``robust_acc``.

Example:
    >>> from tgo.config import TrainConfig
    >>> from tgo.train import fit
    >>> result = fit(TrainConfig(dataset="digits", epochs=2))   # doctest: +SKIP
"""

__version__ = "0.1.0"
