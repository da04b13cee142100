"""Requests the master holds open: regions waiting for work, clients waiting for results."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass(slots=True)
class ParkedLease:
    """A region's lease request that found nothing eligible and waits for work."""

    region: str
    instance: str
    slots: int
    reply: str
    deadline: float
    handle: asyncio.TimerHandle | None = None
    #: The task types asked for (None: any the region registered).
    types: frozenset[str] | None = None


@dataclass(slots=True)
class LeaseParking:
    """At most one parked lease per region instance; a newer request replaces the older."""

    parked: dict[tuple[str, str], ParkedLease] = field(default_factory=dict)

    def park(self, lease: ParkedLease) -> ParkedLease | None:
        old = self.parked.pop((lease.region, lease.instance), None)
        if old is not None and old.handle is not None:
            old.handle.cancel()
        self.parked[(lease.region, lease.instance)] = lease
        return old

    def take(self, region: str, instance: str) -> ParkedLease | None:
        lease = self.parked.pop((region, instance), None)
        if lease is not None and lease.handle is not None:
            lease.handle.cancel()
        return lease

    def all(self) -> list[ParkedLease]:
        return list(self.parked.values())

    def __len__(self) -> int:
        return len(self.parked)


@dataclass(slots=True)
class ResultWaiters:
    """Futures of clients waiting until a task is terminal, keyed by task id."""

    by_task: dict[str, list[asyncio.Future[None]]] = field(default_factory=dict)

    def add(self, task_id: str, fut: asyncio.Future[None]) -> None:
        self.by_task.setdefault(task_id, []).append(fut)

    def discard(self, task_id: str, fut: asyncio.Future[None]) -> None:
        futs = self.by_task.get(task_id)
        if futs is None:
            return
        if fut in futs:
            futs.remove(fut)
        if not futs:
            del self.by_task[task_id]

    def wake(self, task_ids: Iterable[str]) -> None:
        for task_id in task_ids:
            for fut in self.by_task.pop(task_id, ()):
                if not fut.done():
                    fut.set_result(None)

    async def until_terminal(
        self, task_ids: Iterable[str], terminal: Callable[[str], bool], deadline: float
    ) -> None:
        """Return once every task is terminal or at ``deadline`` (loop time), whichever first."""
        loop = asyncio.get_running_loop()
        for task_id in task_ids:
            while not terminal(task_id):
                fut: asyncio.Future[None] = loop.create_future()
                self.add(task_id, fut)
                try:
                    async with asyncio.timeout_at(deadline):
                        await fut
                except TimeoutError:
                    return
                finally:
                    self.discard(task_id, fut)
