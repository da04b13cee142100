"""Fan committed events out on ``<prefix>.events.<kind>`` and wake who waits on them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import msgspec

from ..core import Event, SchedulerState, TaskStarted, event_kind, event_task_id
from ..engine import Engine, Subjects
from ..errors import EngineUnavailableError
from .handlers import admission_state
from .metrics import LiveMetrics
from .waiters import ResultWaiters

__all__ = ["TERMINAL_KINDS", "EventPublisher"]

#: Event kinds after which a task is terminal: its result waiters wake.
TERMINAL_KINDS = frozenset(
    {"task_succeeded", "task_dead", "task_cancelled", "task_skipped", "task_refused"}
)


class EventPublisher:
    """Publishes events once they are durable (never before: no subscriber sees a task the
    log does not hold), feeds the live metrics, wakes result waiters."""

    def __init__(
        self,
        engine: Engine,
        subjects: Subjects,
        metrics: LiveMetrics,
        waiters: ResultWaiters,
        task_name: Callable[[str], str | None] = lambda task_id: None,
    ) -> None:
        #: The task type of an id for the per-type latency (None: leave it out).
        self.task_name = task_name
        self.engine = engine
        self.subjects = subjects
        self.metrics = metrics
        self.waiters = waiters
        self._json = msgspec.json.Encoder()
        self._msgpack = msgspec.msgpack.Encoder().encode
        self._admission: object = None
        self._admission_at = 0.0
        self._subjects: dict[str, str] = {}

    async def publish(self, events: list[Event]) -> None:
        """Fan the committed events out, one message each."""
        finished: list[str] = []
        subject_of = self._subjects
        encode = self._json.encode
        messages: list[tuple[str, bytes]] = []
        observe = self.metrics.observe
        for event in events:
            kind = event_kind(event)
            observe(kind, event.at)
            if type(event) is TaskStarted:
                name = self.task_name(event.id) if event.attempt == 1 else None
                self.metrics.started(event.id, event.attempt, event.at, name)
            subject = subject_of.get(kind)
            if subject is None:
                subject = subject_of[kind] = self.subjects.event(kind)
            messages.append((subject, encode(event)))
            if kind in TERMINAL_KINDS:
                task_id = event_task_id(event)
                if task_id is not None:
                    finished.append(task_id)
        with contextlib.suppress(EngineUnavailableError):
            await self.engine.publish_many(messages)
        if finished and self.waiters.by_task:
            self.waiters.wake(finished)

    async def publish_admission(self, state: SchedulerState, now: float) -> None:
        """Tell intake clients the admission state when it changed, else at most once a
        second (after a change of the state, as this is called after each append)."""
        settings = state.settings.admission
        stats = state.admission_statistics()
        key = (stats.level, tuple(sorted(stats.queues)), settings)
        if key == self._admission and now - self._admission_at < 1.0:
            return
        self._admission = key
        self._admission_at = now
        message = admission_state(state)
        with contextlib.suppress(EngineUnavailableError):
            await self.engine.publish(self.subjects.admission, self._msgpack(message))
