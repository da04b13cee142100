"""What a region really holds versus what the master thinks it holds.

A lease reply can be lost (the master died after committing the assignment but before the
reply left, or the reply was dropped). The region then never runs the task, yet keeps its
lease alive, so the task would stay ASSIGNED forever. Regions therefore report, every few
seconds, the attempts they hold; an attempt the master assigned to them longer ago than a
grace period and that they do not report is lost, and is re-queued like any lost attempt.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from .model import ErrorSummary, Outcome, OutcomeKind

if TYPE_CHECKING:
    from .scheduler import SchedulerState


def missing_attempts(
    state: SchedulerState,
    region: str,
    instance: str,
    held: Collection[tuple[str, int]],
    grace: float,
    now: float,
) -> list[Outcome]:
    """LOST outcomes for attempts assigned to ``region`` before ``now - grace`` it does not hold.

    The grace covers a lease reply still on its way: the region cannot report what it has
    not received yet.
    """
    out: list[Outcome] = []
    for task_id, attempt, assigned in state.held_attempts(region, instance):
        if (task_id, attempt) in held:
            continue
        if (now if assigned is None else assigned) > now - grace:
            continue
        out.append(
            Outcome(
                task_id=task_id,
                attempt=attempt,
                kind=OutcomeKind.LOST,
                error=ErrorSummary(
                    type="LeaseLost",
                    message=f"region {region} does not hold this attempt (lease reply lost)",
                    lost=True,
                ),
            )
        )
    return out
