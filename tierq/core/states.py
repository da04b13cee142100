"""The task state machine as one table of allowed transitions.

::

    PENDING ──► READY ──► ASSIGNED ──► RUNNING ──► SUCCEEDED
       │          ▲          │  ╲          │
       │          │          │   ╲─────────┼──► SUCCEEDED (a region may report without a start)
       │          │          ▼             ▼
       │          └────── FAILED ◄─────────┘
       │                     │
       │                     ▼
       │                   DEAD ──(manual retry)──► READY / PENDING
       ▼
    CANCELLED, SKIPPED (from any non-terminal state; manual retry brings them back too)

A LOST attempt (worker or region gone) is a FAILED attempt like any other: it counts against
``max_attempts`` and goes back to READY at once instead of after a backoff.
"""

from __future__ import annotations

from ..errors import InvalidTransitionError
from .model import TERMINAL_STATES, TaskState

__all__ = [
    "TERMINAL_STATES",
    "TRANSITIONS",
    "WAITING_STATES",
    "band",
    "can_transition",
    "check_transition",
]

P, R, A, U = TaskState.PENDING, TaskState.READY, TaskState.ASSIGNED, TaskState.RUNNING
S, F, D = TaskState.SUCCEEDED, TaskState.FAILED, TaskState.DEAD
C, K = TaskState.CANCELLED, TaskState.SKIPPED

#: state -> the states it may move to. Anything else is an InvalidTransitionError.
TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    P: frozenset({R, C, K}),
    R: frozenset({A, C, K}),
    A: frozenset({U, S, F, C}),
    U: frozenset({S, F, C}),
    F: frozenset({R, D, C, K}),
    S: frozenset(),
    D: frozenset({R, P}),
    C: frozenset({R, P}),
    K: frozenset({R, P}),
}

#: Accepted but not yet handed to a region: what admission control counts.
WAITING_STATES = frozenset({P, R, F})


def can_transition(old: TaskState, new: TaskState) -> bool:
    return new in TRANSITIONS[old]


def check_transition(task_id: str, old: TaskState, new: TaskState) -> None:
    """Raise InvalidTransitionError unless ``old -> new`` is in the table."""
    if new not in TRANSITIONS[old]:
        raise InvalidTransitionError(
            f"task {task_id}: {old.value} -> {new.value} is not an allowed transition",
            field="state",
            ids=(task_id,),
        )


def band(priority: int) -> str:
    """Priority band for statistics: low (<0), normal (0), high (1..499), critical (>=500)."""
    if priority < 0:
        return "low"
    if priority == 0:
        return "normal"
    return "high" if priority < 500 else "critical"
