"""Circuit breaker over a sliding window of outcomes: closed -> open -> half-open -> closed.

The breaker only records and answers; the scheduler turns its answers into ``breaker_*`` events
and applies them, so a replayed log opens and closes the same breakers at the same points.
While open, tasks of that key wait in the queue: they are not failed.
"""

from __future__ import annotations

import enum
from collections import deque

import msgspec

from .settings import BreakerSettings

__all__ = ["BreakerState", "BreakerStatistics", "CircuitBreaker"]


class BreakerState(enum.Enum):
    #: Outcomes are counted; tasks flow.
    CLOSED = "closed"
    #: Too many failures; nothing flows until the cool-down ends.
    OPEN = "open"
    #: One probe task may run; its outcome closes or re-opens the breaker.
    HALF_OPEN = "half_open"


class BreakerStatistics(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    state: BreakerState
    samples: int
    failures: int
    opened_at: float | None
    probe: str | None


class CircuitBreaker:
    """One breaker. ``window`` holds True for a failure, False for a success."""

    __slots__ = ("_failures", "key", "opened_at", "probe", "state", "window")

    def __init__(self, key: str, size: int) -> None:
        self.key = key
        self.state = BreakerState.CLOSED
        self.window: deque[bool] = deque(maxlen=size)
        self._failures = 0
        self.opened_at: float | None = None
        #: The task id let through while half-open, if any.
        self.probe: str | None = None

    @property
    def failures(self) -> int:
        return self._failures

    def record(self, failed: bool) -> None:
        window = self.window
        if window.maxlen is not None and len(window) == window.maxlen and window[0]:
            self._failures -= 1
        window.append(failed)
        if failed:
            self._failures += 1

    def should_open(self, settings: BreakerSettings) -> bool:
        n = len(self.window)
        return (
            self.state is BreakerState.CLOSED
            and n >= settings.min_samples
            and self._failures >= settings.failure_rate * n
        )

    def cooled(self, now: float, settings: BreakerSettings) -> bool:
        return (
            self.state is BreakerState.OPEN
            and self.opened_at is not None
            and now >= self.opened_at + settings.cooldown
        )

    def allows(self) -> bool:
        """Whether a task of this key may be handed out now."""
        if self.state is BreakerState.CLOSED:
            return True
        return self.state is BreakerState.HALF_OPEN and self.probe is None

    def open(self, at: float) -> None:
        self.state = BreakerState.OPEN
        self.opened_at = at
        self.probe = None

    def half_open(self) -> None:
        self.state = BreakerState.HALF_OPEN
        self.probe = None

    def close(self) -> None:
        self.state = BreakerState.CLOSED
        self.opened_at = None
        self.probe = None
        self.window.clear()
        self._failures = 0

    def resize(self, size: int) -> None:
        self.window = deque(self.window, maxlen=size)
        self._failures = sum(self.window)

    def statistics(self) -> BreakerStatistics:
        return BreakerStatistics(
            key=self.key,
            state=self.state,
            samples=len(self.window),
            failures=self._failures,
            opened_at=self.opened_at,
            probe=self.probe,
        )
