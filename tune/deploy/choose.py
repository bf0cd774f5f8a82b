"""Choosing from a sweep's front: the feasible member best on one objective, or the knee
of the feasible front (:mod:`tune.deploy.knee`), explained.

The explanation shows the front as a table with, per member, the requirements it fails;
when none is feasible it says which requirement empties the front (one no member meets, or
one whose removal would leave members).

Example:
    >>> result = pick(front, [Requirement.parse("clean_acc >= 0.9")], "robust_acc")
    ... # doctest: +SKIP
    >>> print(format_pick(result))                                     # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

from tgo.config import as_enum
from tune.deploy.knee import KNEE_RULE, knee_distances
from tune.deploy.requirements import METRICS, NUMERIC_FIELDS, Requirement, is_number
from tune.objectives import Direction
from tune.pareto import Objective
from tune.tracking.reader import SweepFront, TrialRun

__all__ = ["PickResult", "explain_knee", "format_pick", "format_value", "pick"]


@dataclasses.dataclass(frozen=True)
class PickResult:
    """The choice and its explanation.

    Attributes:
        failures: per member run id, the requirements it fails, as text with the value.
        chosen: the best feasible member on ``objective``; None when none is feasible.
        why_empty: when none is feasible, which requirement(s) empty the front.
        knee: with ``knee=True``, per feasible member run id its distance beyond the line
            between the feasible front's ends (the chosen member has the largest); else None.
    """

    front: SweepFront
    requirements: tuple[Requirement, ...]
    objective: Objective
    failures: Mapping[str, tuple[str, ...]]
    feasible: tuple[TrialRun, ...]
    chosen: TrialRun | None
    why_empty: tuple[str, ...]
    knee: Mapping[str, float] | None = None


def format_value(value: Any) -> str:
    """A value for the explanation: floats to 4 significant digits, None as ``missing``."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "missing" if value is None else str(value)


def _emptiers(members: Sequence[TrialRun], reqs: Sequence[Requirement]) -> list[str]:
    """Which requirements leave no member: met by none, or dropping one leaves some."""
    lines = []
    for req in reqs:
        if not any(req.holds(m.value(req.name)) for m in members):
            values = [m.value(req.name) for m in members if is_number(m.value(req.name))]
            near = ""
            if values:
                best = (max(values) if req.op in (">=", ">") else min(values)
                        if req.op in ("<=", "<") else min(values, key=lambda v: abs(v - req.value)))
                near = f" (closest on the front: {format_value(best)})"
            lines.append(f"'{req}' empties the front by itself: no member meets it{near}")
    if lines:
        return lines
    for req in reqs:
        others = [r for r in reqs if r is not req]
        left = [m for m in members if all(r.holds(m.value(r.name)) for r in others)]
        if left:
            lines.append(f"'{req}' empties the front: without it {len(left)} member(s) would "
                         f"remain ({', '.join(m.trial_id for m in left)})")
    return lines or ["no single requirement is to blame: every member fails at least two, "
                     "and dropping any one of them leaves none"]


def pick(front: SweepFront, requirements: Sequence[Requirement | str],
         objective: str | None = None, direction: Direction | str = Direction.MAX,
         *, knee: bool = False) -> PickResult:
    """Choose the feasible front member that is best on ``objective``, or the knee.

    Ties go to the sweep's other objectives in order, then to the trial id.

    Args:
        objective: a metric or numeric param (default: the sweep's first objective, in its
            direction).
        direction: ``max`` or ``min``.
        knee: choose the feasible member farthest beyond the line between the ends of the
            feasible front (:data:`tune.deploy.knee.KNEE_RULE`) instead; ``objective``
            must then be None.

    Example:
        >>> result = pick(front, ["clean_acc >= 0.9"], "robust_acc")   # doctest: +SKIP
        >>> result.chosen.trial_id                                      # doctest: +SKIP
        'a1b2_00003'
    """
    reqs = tuple(r if isinstance(r, Requirement) else Requirement.parse(r) for r in requirements)
    if knee and objective is not None:
        raise ValueError(f"knee: expected no objective to pick by besides the knee, got "
                         f"{objective!r} (drop --maximize/--minimize or --knee)")
    if objective is None:
        if not front.objectives:
            raise ValueError("maximize: expected an objective to pick by; the sweep records "
                             "none (pass --maximize NAME or --minimize NAME)")
        goal = front.objectives[0]
    else:
        if objective not in METRICS and objective not in NUMERIC_FIELDS:
            raise ValueError(f"objective: expected a metric ({', '.join(METRICS)}) or a "
                             f"numeric TrainConfig field, got {objective!r}")
        goal = Objective(objective, as_enum(Direction, direction, "direction"))
    failures = {m.run_id: tuple(f"{r} ({format_value(m.value(r.name))})" for r in reqs
                                if not r.holds(m.value(r.name))) for m in front.members}
    feasible = tuple(m for m in front.members if not failures[m.run_id])
    scorable = [m for m in feasible if is_number(m.value(goal.name))]

    def key(m: TrialRun) -> tuple:
        sign = [1.0 if o.direction is Direction.MAX else -1.0 for o in (goal, *front.objectives)]
        values = [m.value(o.name) for o in (goal, *front.objectives)]
        return tuple(-s * v if is_number(v) else math.inf
                     for s, v in zip(sign, values)) + (m.trial_id,)

    distances = None
    if knee:
        distances = knee_distances({m.run_id: m.metrics for m in feasible}, front.objectives)
        scorable = [m for m in scorable if m.run_id in distances]
        chosen = min(scorable, key=lambda m: (-distances[m.run_id], *key(m))) \
            if scorable else None
    else:
        chosen = min(scorable, key=key) if scorable else None
    why: tuple[str, ...] = ()
    if not front.members:
        why = ("the sweep has no Pareto front yet (no finished trial is tagged pareto=true)",)
    elif not feasible:
        why = tuple(_emptiers(front.members, reqs))
    return PickResult(front, reqs, goal, failures, feasible, chosen, why, distances)


def format_pick(result: PickResult) -> str:
    """The front as a table (one verdict per member), then why this member was chosen."""
    front, goal = result.front, result.objective
    metric_cols = list(dict.fromkeys([*(o.name for o in front.objectives), goal.name,
                                      *(r.name for r in result.requirements
                                        if r.name in METRICS)]))
    param_cols = list(dict.fromkeys([*front.searched, *(r.name for r in result.requirements
                                                        if r.name not in METRICS)]))
    param_cols = [p for p in param_cols if p not in metric_cols]
    header = ["trial", *metric_cols, *param_cols,
              *(["knee distance"] if result.knee is not None else []), "verdict"]
    rows = []
    for m in sorted(front.members, key=lambda m: (m is not result.chosen, m.trial_id)):
        fails = result.failures[m.run_id]
        if m is result.chosen:
            verdict = "CHOSEN"
        else:
            verdict = "excluded: " + "; ".join(fails) if fails else "feasible"
        knee = [] if result.knee is None else [format_value(result.knee.get(m.run_id))
                                                if not fails else "-"]
        rows.append([m.trial_id, *(format_value(m.value(c)) for c in metric_cols),
                     *(format_value(m.params.get(c)) for c in param_cols), *knee, verdict])
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    lines = [f"Pareto front of sweep {front.name!r} ({len(front.members)} members; parent run "
             f"{front.parent_run_id}):",
             "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    reqs = ", ".join(f"'{r}'" for r in result.requirements) or "none"
    lines.append("")
    rule = KNEE_RULE if result.knee is not None else f"{goal.direction.value} {goal.name}"
    lines.append(f"requirements: {reqs}; pick by: {rule}")
    chosen = result.chosen
    if chosen is None:
        lines.append("no front member meets every requirement:" if result.feasible == ()
                     else f"no feasible member reports {goal.name}:")
        lines += [f"  - {line}" for line in result.why_empty]
        return "\n".join(lines)
    others = [m.trial_id for m in result.feasible if m is not chosen]
    if result.knee is not None:
        lines.append(explain_knee(result))
    else:
        lines.append(f"chosen: trial {chosen.trial_id} (run {chosen.run_id}), {goal.name} "
                     f"{format_value(chosen.value(goal.name))}, the "
                     f"{'highest' if goal.direction is Direction.MAX else 'lowest'} among "
                     f"{len(result.feasible)} feasible member(s)"
                     + (f" (also feasible: {', '.join(others)})" if others else ""))
    if chosen.evaluation.get("eval_description"):
        lines.append(f"measured with: {chosen.evaluation['eval_description']}")
    return "\n".join(lines)


def explain_knee(result: PickResult) -> str:
    """One sentence: which member is the knee, its distance, and the ends it lies between."""
    chosen, front = result.chosen, result.front
    assert chosen is not None and result.knee is not None
    ends = []
    for o in front.objectives:
        best = _best_on(result.feasible, o)
        if best is not None:
            ends.append(f"{o.direction.value} {o.name}: trial {best.trial_id} "
                        f"({format_value(best.value(o.name))})")
    values = ", ".join(f"{o.name} {format_value(chosen.value(o.name))}" for o in front.objectives)
    return (f"chosen: trial {chosen.trial_id} (run {chosen.run_id}), the knee of "
            f"{len(result.feasible)} feasible member(s): {values}, distance "
            f"{result.knee[chosen.run_id]:.3f} beyond the line between the ends "
            f"[{'; '.join(ends)}]")


def _best_on(members: Sequence[TrialRun], objective: Objective) -> TrialRun | None:
    scored = [m for m in members if is_number(m.value(objective.name))]
    if not scored:
        return None
    sign = 1.0 if objective.direction is Direction.MAX else -1.0
    return max(scored, key=lambda m: sign * m.value(objective.name))
