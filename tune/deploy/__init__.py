"""Pick a deployable configuration from a sweep's Pareto front (``tgo pick``).

The front is the sweep's child runs tagged ``pareto=true``, read by
:func:`tune.tracking.reader.load_front_members`. Requirements such as ``clean_acc >= 0.9``
or ``timesteps <= 4`` (:mod:`~tune.deploy.requirements`) filter it, and the feasible member
that is best on one objective is chosen (:mod:`~tune.deploy.choose`). The choice can be
registered in the MLflow Model Registry (:mod:`~tune.deploy.registry`: a new version of the
chosen run's logged model, alias ``deploy``), re-measured (:mod:`~tune.deploy.check`: clean
accuracy with the noise off must reproduce) and written to ``deploy.yaml``
(:mod:`~tune.deploy.deploy_file`: full TrainConfig, metrics, attack, model URI).

Example:
    >>> front = load_front_members("digits-quick")                     # doctest: +SKIP
    >>> result = pick(front, [Requirement.parse("clean_acc >= 0.9")], "robust_acc")
    ... # doctest: +SKIP
    >>> print(format_pick(result))                                     # doctest: +SKIP
"""

from __future__ import annotations

from tune.deploy.check import DeployCheck, check_deployment, measure_clean_accuracy
from tune.deploy.choose import PickResult, format_pick, pick
from tune.deploy.deploy_file import deploy_document, member_config, read_deploy
from tune.deploy.registry import DEPLOY_ALIAS, Registration, load_model, register
from tune.deploy.requirements import NUMERIC_FIELDS, Requirement
from tune.tracking.reader import SweepFront, TrialRun, load_front_members

#: A front member is a trial's child run as the reader returns it.
FrontMember = TrialRun

__all__ = [
    "DEPLOY_ALIAS",
    "DeployCheck",
    "FrontMember",
    "NUMERIC_FIELDS",
    "PickResult",
    "Registration",
    "Requirement",
    "SweepFront",
    "check_deployment",
    "deploy_document",
    "format_pick",
    "load_front_members",
    "load_model",
    "measure_clean_accuracy",
    "member_config",
    "pick",
    "read_deploy",
    "register",
]
