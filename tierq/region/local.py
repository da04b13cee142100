"""The region's soft state: its local queue and the workers it hands tasks to."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..core.model import (
    ErrorSummary,
    LeasedTask,
    Outcome,
    OutcomeKind,
    Progress,
    Started,
    TaskSpec,
)
from ..protocol import WorkerView

Attempt = tuple[str, int]


class LocalQueue:
    """Tasks leased from the master, not yet handed out: one heap per task type.

    A worker pops only the types it registered, so a type nobody here can run never blocks
    another; among the worker's types the highest priority wins, FIFO among equals.
    """

    def __init__(self) -> None:
        self._heaps: dict[str, list[tuple[int, int, LeasedTask]]] = {}
        self._ids: dict[str, LeasedTask] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._ids)

    def push(self, task: LeasedTask) -> None:
        heapq.heappush(
            self._heaps.setdefault(task.name, []), (-task.priority, next(self._seq), task)
        )
        self._ids[task.id] = task

    def remove(self, task_id: str) -> LeasedTask | None:
        """Forget a task (cancelled); its heap entry is dropped lazily when it surfaces."""
        return self._ids.pop(task_id, None)

    def pop_for(self, task_types: Iterable[str], limit: int) -> list[LeasedTask]:
        out: list[LeasedTask] = []
        heaps = [h for t in task_types if (h := self._heaps.get(t))]
        while len(out) < limit and heaps:
            best = min(heaps, key=lambda h: h[0][:2])
            _, _, task = heapq.heappop(best)
            if not best:
                heaps.remove(best)
            if self._ids.get(task.id) is task:
                del self._ids[task.id]
                out.append(task)
        return out

    def counts(self) -> dict[str, int]:
        """Queued tasks per type (cancelled ones excluded)."""
        out: dict[str, int] = {}
        for task in self._ids.values():
            out[task.name] = out.get(task.name, 0) + 1
        return out

    def types(self) -> set[str]:
        """Task types with at least one live entry (a cancelled one may linger in a heap)."""
        return {task.name for task in self._ids.values()}

    def take_types(self, keep: frozenset[str]) -> list[LeasedTask]:
        """Remove and return every queued task whose type is not in ``keep``."""
        out: list[LeasedTask] = []
        for name in [t for t in self._heaps if t not in keep]:
            for _, _, task in sorted(self._heaps.pop(name)):
                if self._ids.get(task.id) is task:
                    del self._ids[task.id]
                    out.append(task)
        return out

    def tasks(self) -> list[LeasedTask]:
        return list(self._ids.values())

    def drain_all(self) -> list[LeasedTask]:
        tasks = list(self._ids.values())
        self._ids.clear()
        self._heaps.clear()
        return tasks


@dataclass(slots=True)
class ParkedPull:
    worker: str
    slots: int
    reply: str
    handle: asyncio.TimerHandle


@dataclass(slots=True)
class Outbox:
    """Worker news waiting to go up to the master, and the worker replies that wait on it."""

    started: list[Started] = field(default_factory=list)
    progress: list[Progress] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    #: Reports of attempts nobody here holds: (task id, attempt, outcome kind).
    late: list[tuple[str, int, str]] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.started or self.progress or self.outcomes or self.late or self.replies)


@dataclass(slots=True)
class WorkerSlot:
    """What the region knows of one worker; soft, rebuilt when workers re-register."""

    id: str
    task_types: frozenset[str]
    concurrency: int
    pool: str
    host: str
    pid: int
    last_heartbeat: float
    running: dict[Attempt, LeasedTask] = field(default_factory=dict)
    #: When each attempt in ``running`` was handed out (region clock).
    handed_at: dict[Attempt, float] = field(default_factory=dict)
    #: Attempts in ``running`` the worker's last heartbeat did not list.
    unlisted: set[Attempt] = field(default_factory=set)
    cancel: set[Attempt] = field(default_factory=set)
    draining: bool = False
    #: The worker's probe subject ("" if it has none) and when it was last probed.
    probe: str = ""
    probed_at: float = 0.0
    #: Registered on the trusted subjects (the API's shell runner): it alone may serve
    #: reserved task types, and nothing on the ordinary subjects may act under its id.
    trusted: bool = False
    #: The options its task types declare in code, by name.
    declared: dict[str, TaskSpec] = field(default_factory=dict)
    completed: int = 0
    failed: int = 0

    @property
    def free(self) -> int:
        return 0 if self.draining else max(0, self.concurrency - len(self.running))

    def view(self, region: str) -> WorkerView:
        return WorkerView(
            id=self.id,
            region=region,
            task_types=sorted(self.task_types),
            concurrency=self.concurrency,
            running=len(self.running),
            pool=self.pool,
            host=self.host,
            pid=self.pid,
            last_heartbeat=self.last_heartbeat,
            draining=self.draining,
            completed=self.completed,
            failed=self.failed,
        )


def lost_outcome(
    task_id: str, attempt: int, kind: str, why: str, worker: str | None = None
) -> Outcome:
    """The region ends an attempt as lost (the master re-queues it as a counted retry)."""
    return Outcome(
        task_id=task_id,
        attempt=attempt,
        kind=OutcomeKind.LOST,
        worker=worker,
        error=ErrorSummary(type=kind, message=why, lost=True),
    )


def lease_ask(
    workers: list[WorkerSlot], queued: dict[str, int], prefetch: int
) -> tuple[int, list[str] | None]:
    """Slots to lease and their types (None: any), given the live workers and the queued
    tasks per type; see :meth:`tierq.region.service.Region.lease_ask`."""
    room = {w.id: w.free for w in workers}
    waiting = 0
    for name, n in sorted(queued.items()):
        # Workers with fewer types first: they have fewer other uses for their slots.
        runners = sorted((w for w in workers if name in w.task_types), key=_type_count)
        for w in runners:
            take = min(n, room[w.id])
            room[w.id] -= take
            n -= take
        if runners:
            waiting += n
    free = sum(room.values())
    spare = max(0, prefetch - waiting)
    if spare:
        return free + spare, None
    types = sorted(frozenset().union(*(w.task_types for w in workers if room[w.id] > 0)))
    return free, types


def _type_count(worker: WorkerSlot) -> int:
    return len(worker.task_types)
