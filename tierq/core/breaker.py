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

__all__ = ["BreakerBoard", "BreakerKey", "BreakerState", "BreakerStatistics", "CircuitBreaker"]


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


#: (scope, region, name): ("task", region, task name) or ("resource", None, resource).
BreakerKey = tuple[str, str | None, str]

#: What a placement class's breakers let through now (see ``BreakerBoard.gate``).
BLOCKED, PROBE, FLOW = 0, 1, 2


def _sort_key(key: BreakerKey) -> tuple[str, str, str]:
    return (key[0], key[1] or "", key[2])


class BreakerBoard:
    """Every breaker of the scheduler, per (region, task name) and per resource.

    It owns the breakers and answers the questions the scheduler asks of them; the scheduler
    turns the answers into ``breaker_*`` events and applies them back here (``open``,
    ``half_open``, ``close``), so a replay opens and closes the same breakers."""

    __slots__ = ("_breakers", "_window")

    def __init__(self, window: int) -> None:
        self._breakers: dict[BreakerKey, CircuitBreaker] = {}
        self._window = window

    def __bool__(self) -> bool:
        return bool(self._breakers)

    def __len__(self) -> int:
        return len(self._breakers)

    def get(self, key: BreakerKey) -> CircuitBreaker | None:
        return self._breakers.get(key)

    def breaker(self, key: BreakerKey) -> CircuitBreaker:
        """The breaker of ``key``, made closed and empty on first use."""
        b = self._breakers.get(key)
        if b is None:
            scope, region, name = key
            label = f"task:{region}:{name}" if scope == "task" else f"resource:{name}"
            b = self._breakers[key] = CircuitBreaker(label, self._window)
        return b

    def items(self) -> list[tuple[BreakerKey, CircuitBreaker]]:
        """Every breaker in a stable order (scope, region, name): what snapshots and
        statistics list."""
        breakers = self._breakers
        return [(k, breakers[k]) for k in sorted(breakers, key=_sort_key)]

    def statistics(self) -> list[BreakerStatistics]:
        return [b.statistics() for _, b in self.items()]

    def resize(self, window: int) -> None:
        self._window = window
        for b in self._breakers.values():
            b.resize(window)

    @staticmethod
    def keys_of(region: str | None, name: str, resource: str | None) -> list[BreakerKey]:
        """The breakers an outcome of task ``name`` in ``region`` feeds."""
        keys: list[BreakerKey] = [("task", region, name)]
        if resource is not None:
            keys.append(("resource", None, resource))
        return keys

    def record(self, region: str | None, name: str, resource: str | None, failed: bool) -> None:
        """Count a SUCCEEDED or FAILED outcome (not a lost one)."""
        b = self._breakers.get(("task", region, name))
        if b is None:
            b = self.breaker(("task", region, name))
        b.record(failed)
        if resource is not None:
            self.breaker(("resource", None, resource)).record(failed)

    def probe_wanted(self) -> bool:
        """Whether some half-open breaker waits for its probe (an assignment may claim it)."""
        return any(
            b.state is BreakerState.HALF_OPEN and b.probe is None for b in self._breakers.values()
        )

    def claim_probe(self, region: str | None, name: str, resource: str | None, tid: str) -> None:
        """A half-open breaker with no probe out takes this assignment as its probe."""
        for key in self.keys_of(region, name, resource):
            b = self._breakers.get(key)
            if b is not None and b.state is BreakerState.HALF_OPEN and b.probe is None:
                b.probe = tid

    def release_probe(self, region: str | None, name: str, resource: str | None, tid: str) -> None:
        """A probe that ended without an outcome (lost, cancelled) frees its breaker."""
        if not self._breakers:
            return
        for key in self.keys_of(region, name, resource):
            b = self._breakers.get(key)
            if b is not None and b.probe == tid:
                b.probe = None

    def gate(self, region: str, name: str, resource: str | None) -> int:
        """What the breakers of a placement class let through now: BLOCKED, PROBE or FLOW."""
        gate = FLOW
        breakers = self._breakers
        for b in (
            breakers.get(("task", region, name)),
            breakers.get(("resource", None, resource)) if resource is not None else None,
        ):
            if b is None or b.state is BreakerState.CLOSED:
                continue
            if not b.allows():
                return BLOCKED
            gate = PROBE
        return gate

    def verdicts(
        self,
        region: str | None,
        name: str,
        resource: str | None,
        tid: str,
        failed: bool,
        settings: BreakerSettings,
    ) -> list[tuple[BreakerKey, bool]]:
        """After an outcome of task ``tid``: the breakers to open (True) or close (False).

        A probe's outcome closes or re-opens its half-open breaker; a closed one opens when its
        window says so. Each verdict concerns its own breaker only, so they may be applied in
        order after all are decided."""
        breakers = self._breakers
        if resource is None:
            # The common case, without building the key list: one task breaker, closed and
            # without failures (it cannot open on this outcome).
            b = breakers.get(("task", region, name))
            if b is None or (b.state is BreakerState.CLOSED and b.failures == 0):
                return []
        out: list[tuple[BreakerKey, bool]] = []
        for key in self.keys_of(region, name, resource):
            b = breakers.get(key)
            if b is None or (
                b.state is BreakerState.CLOSED
                and (b.failures == 0 or len(b.window) < settings.min_samples)
            ):
                continue
            if b.state is BreakerState.HALF_OPEN and b.probe == tid:
                out.append((key, failed))
            elif b.should_open(settings):
                out.append((key, True))
        return out

    def cooled(self, now: float, settings: BreakerSettings) -> list[BreakerKey]:
        """The open breakers whose cool-down ended: due to go half-open."""
        return [k for k, b in self.items() if b.cooled(now, settings)]

    def reopen_times(self, cooldown: float) -> list[float]:
        """When each open breaker's cool-down ends (for ``next_wakeup``)."""
        return [
            b.opened_at + cooldown
            for b in self._breakers.values()
            if b.state is BreakerState.OPEN and b.opened_at is not None
        ]

    def restore(
        self,
        key: BreakerKey,
        state: BreakerState,
        window: list[bool],
        opened_at: float | None,
        probe: str | None,
    ) -> None:
        """Put back one breaker as a snapshot recorded it."""
        b = self.breaker(key)
        b.window = deque(window, maxlen=self._window)
        b.resize(self._window)
        b.state = state
        b.opened_at = opened_at
        b.probe = probe
