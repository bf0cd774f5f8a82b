"""Every MLflow read and write of a sweep.

* :mod:`~tune.tracking.schema`: the layout, named once: tag names, search filters, how
  values become text;
* :mod:`~tune.tracking.tracker`: :class:`SweepTracker`, the parent run of a sweep and the
  child runs of its trials (:mod:`~tune.tracking.trials`: params, per-epoch metrics, run
  states; :mod:`~tune.tracking.front`: the front); :mod:`~tune.tracking.sweep` builds one
  from a spec; :mod:`~tune.tracking.availability`: reachability and
  :class:`TrackingUnavailable`;
* :mod:`~tune.tracking.callback` + :mod:`~tune.tracking.ops`: the Ray Tune callback that
  turns trial events into replayable MLflow *ops*;
* :mod:`~tune.tracking.journal` + :mod:`~tune.tracking.sync`: what MLflow could not take,
  kept beside Ray's results and replayed later;
* :mod:`~tune.tracking.front_models`: the models and artifacts of front members;
* :mod:`~tune.tracking.reader`: the one reader of sweeps and fronts (the tracker's
  finished trials, ``tgo pareto``, ``tgo pick``).
"""

from __future__ import annotations

from tune.tracking.sweep import artifact_location, make_tracker, objectives_of
from tune.tracking.tracker import (SweepTracker, TrackingUnavailable, TrialOutcome,
                                   check_reachable)

__all__ = ["SweepTracker", "TrackingUnavailable", "TrialOutcome", "artifact_location",
           "check_reachable", "make_tracker", "objectives_of"]
