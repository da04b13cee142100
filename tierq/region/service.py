"""The regional scheduler: leases batches from the master, hands them to pulling workers.

Flow control is by credits: the region asks the master for at most as many tasks as its live
workers have free slots (plus a small configured prefetch), so nothing is pushed that nobody
can run. Workers long-poll; a pull is answered at once when the local queue has something the
worker can run, otherwise it is parked until tasks arrive or its wait runs out.

Worker reports are forwarded upward in batches; a worker's report is acknowledged only after
the master acknowledged the batch that carried it, so a region crash loses no outcome (the
worker retries, and the master treats a repeat as a duplicate).

The region's state is soft. If the region dies, its lease at the master expires and the master
re-queues what it held; a restarted region registers as a new instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ..config import RegionConfig
from ..core.model import (
    RegionInfo,
    TaskSpec,
)
from ..core.outcomes import HANDED_BACK
from ..engine import Engine, Subjects, Subscription, connect, raise_if_cancelled
from ..errors import (
    ConflictError,
    EngineUnavailableError,
    InvalidRequestError,
    NotFoundError,
    TierqError,
)
from ..protocol import (
    Ack,
    LeaseReply,
    LeaseRequest,
    RegionHello,
    RegionReport,
    RegionReportReply,
    RegisterRegionReply,
    RegisterRegionRequest,
    decode_reply,
    encode,
    encode_ok,
)
from . import reports
from .local import LocalQueue, Outbox, lease_ask, lost_outcome
from .workers import WorkerSide

log = logging.getLogger("tierq.region")

T = TypeVar("T")

#: How long a lease request may wait at the master for work (long-poll).
LEASE_WAIT = 2.0
#: How long the master may take to answer beyond that. The master answers once its log
#: append is acknowledged (milliseconds); a silent master has died, and a standby will answer
#: the retry, so waiting long only delays recovery.
MASTER_TIMEOUT = 3.0
#: How often the region lists every attempt it holds (see ``tierq.core.reconcile``).
HELD_EVERY = 2.0
#: An idle region reports (and so renews its lease) this many times per lease period.
RENEWALS_PER_LEASE = 10


class Region(WorkerSide):
    """One region process."""

    def __init__(
        self, config: RegionConfig, engine: Engine, *, clock: Callable[[], float] = time.time
    ) -> None:
        """``clock`` is every reading of time the region makes: worker heartbeats and leases,
        probes, the hand-back wait and the pace of the held list. Tests pass their own."""
        self.config = config
        self.engine = engine
        self.clock = clock
        self.name = config.name
        self.instance = os.urandom(6).hex()
        #: This process, as workers see it (``instance`` changes also when a lease is lost).
        self.process = self.instance
        self.subjects = Subjects(config.nats.prefix)
        self.queue = LocalQueue()
        self.workers = {}
        self._parked = {}
        self._outbox = Outbox()
        self._outbox_ready = asyncio.Event()
        self._credits_changed = asyncio.Event()
        #: (instance, task types) the master last confirmed; None until the first
        #: registration of the current instance completes.
        self._registered: tuple[str, frozenset[str]] | None = None
        #: Queued task types no live worker runs, and since when (``clock``).
        self._orphaned: dict[str, float] = {}
        self._grace = config.worker_lease_seconds
        self._lease_seconds = 10.0
        self._held_sent_at = self.clock()
        #: When a request to the master first failed, while it has not answered since.
        self._master_lost_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.ready = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        subs: list[Subscription] = []
        s = self.subjects
        try:
            for op, cb in (
                ("register", self._on_register),
                ("pull", self._on_pull),
                ("heartbeat", self._on_heartbeat),
                ("report", self._on_report),
                ("control", self._on_control),
            ):
                subs.append(await self.engine.subscribe(s.region(self.name, op), cb=cb))
            for op, trusted_cb in (
                ("register", self._on_register),
                ("pull", self._on_pull),
                ("heartbeat", self._on_heartbeat),
                ("report", self._on_report),
            ):
                subject = s.region_trusted(self.name, op)
                cb = functools.partial(trusted_cb, trusted=True)
                subs.append(await self.engine.subscribe(subject, cb=cb))
            subs.append(
                await self.engine.subscribe(s.event("task_cancelled"), cb=self._on_cancelled)
            )
            # Workers of a previous process register again now, not after their pull times out.
            try:
                hello = encode(RegionHello(instance=self.process))
                await self.engine.publish(s.region(self.name, "hello"), hello)
            except TierqError as exc:  # e.g. not permitted: workers notice by heartbeat
                log.warning("region %s could not announce itself: %s", self.name, exc)
            await self._register()
            self.ready.set()
            async with asyncio.TaskGroup() as tg:
                loops = (
                    self._lease_loop,
                    self._report_loop,
                    self._liveness_loop,
                    self._hand_back_loop,
                )
                for loop in loops:
                    tg.create_task(self._forever(loop))
        finally:
            for sub in subs:
                with contextlib.suppress(TierqError):
                    await sub.unsubscribe()
            for task in list(self._tasks):
                task.cancel()

    async def _forever(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a service loop; a bug in one round is logged, and the loop starts again
        instead of taking the whole region (and every worker's pulls) down with it."""
        while True:
            raise_if_cancelled()  # one a NATS wait swallowed (see engine/_cancel.py)
            try:
                await loop()
            except Exception:
                log.exception("region %s: %s failed; restarting it", self.name, loop.__name__)
                await asyncio.sleep(0.5)

    async def _master(
        self, op: str, request: object, reply_type: type[T], timeout: float = 10.0
    ) -> T:
        try:
            data = await self.engine.request(
                self.subjects.master(op), encode(request), timeout=timeout
            )
        except EngineUnavailableError:
            if self._master_lost_at is None:
                self._master_lost_at = time.monotonic()
            raise
        if self._master_lost_at is not None:
            # Say it once the master answers again: the warnings alone never said it ended.
            down = time.monotonic() - self._master_lost_at
            self._master_lost_at = None
            log.info(
                "region %s: the master answers again (unreachable for %.1f s)", self.name, down
            )
        return decode_reply(data, reply_type)

    def live_types(self) -> frozenset[str]:
        """Task types some live worker here takes (a draining worker takes nothing new)."""
        return frozenset().union(*(w.task_types for w in self.workers.values() if not w.draining))

    def _declared(self, types: frozenset[str]) -> dict[str, TaskSpec]:
        """What the live workers declare for ``types`` (the first worker by id wins)."""
        out: dict[str, TaskSpec] = {}
        for wid in sorted(self.workers, reverse=True):
            worker = self.workers[wid]
            if not worker.draining:
                out.update((n, s) for n, s in worker.declared.items() if n in types)
        return out

    @property
    def registered_types(self) -> frozenset[str]:
        return self._registered[1] if self._registered is not None else frozenset()

    def registration_due(self) -> bool:
        """The master's view of this region (instance, task types) is not the live one."""
        return self._registered != (self.instance, self.live_types())

    async def _register(self) -> None:
        """Register (again) with the master; retried until a master answers.

        What is sent is a snapshot: workers may join or leave, and the lease may be lost,
        while the master answers. Only that snapshot is recorded as registered, so
        :meth:`registration_due` stays true after any such change and the lease loop
        registers again; nothing done meanwhile is overwritten.
        """
        delay = 0.05
        while True:
            types = self.live_types()
            instance = self.instance
            info = RegionInfo(
                name=self.name,
                instance=instance,
                labels=self.config.labels,
                task_types=tuple(sorted(types)),
                declared=self._declared(types),
            )
            try:
                reply = await self._master(
                    "register", RegisterRegionRequest(info=info), RegisterRegionReply
                )
            except EngineUnavailableError as exc:
                log.warning("region %s cannot reach the master: %s", self.name, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            except TierqError as exc:
                # Refused (e.g. bad labels): keep serving and try again, loudly.
                log.error("the master refused region %s: %s", self.name, exc)
                await asyncio.sleep(2.0)
                continue
            self._lease_seconds = reply.lease_seconds
            if self.instance == instance:
                self._registered = (instance, types)
            return

    async def _hand_back_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self._give_back()

    def _give_back(self) -> None:
        """Hand back to the master the queued tasks no live worker here has run for a while.

        Only types the master knows the region no longer offers (so it will not lease them
        here again), and only once they have had no live worker for ``worker_lease_seconds``:
        a worker restarting (a deploy) gets its tasks, a pool that went away does not hold
        them. They go back as lost attempts (re-queued at once, counted like any lost
        attempt), with the reason in their history. Until then they hold no credits.
        """
        now = self.clock()
        keep = self.registered_types | self.live_types()
        orphaned = {t for t in self.queue.types() if t not in keep}
        for name in [t for t in self._orphaned if t not in orphaned]:
            del self._orphaned[name]
        due = {t for t in orphaned if now - self._orphaned.setdefault(t, now) >= self._grace}
        if self._registered is None or self._registered[0] != self.instance or not due:
            return
        orphans = self.queue.take_types(frozenset(self.queue.types() - due))
        if not orphans:
            return
        for task in orphans:
            why = f"no live worker in region {self.name} runs {task.name!r}"
            self._outbox.outcomes.append(lost_outcome(task.id, task.attempt, HANDED_BACK, why))
        for name in sorted({task.name for task in orphans}):
            n = sum(1 for task in orphans if task.name == name)
            log.warning("region %s: nobody here runs %r; %d tasks go back", self.name, name, n)
        self._outbox_ready.set()
        self._credits_changed.set()

    # -- credits and leasing ---------------------------------------------------------------

    def credits(self) -> int:
        return self.lease_ask()[0]

    def lease_ask(self) -> tuple[int, list[str] | None]:
        """How many tasks to ask the master for, and of which types (None: any).

        Credits are per worker: each queued task takes a free slot of a live worker that can
        run it, and what is left is asked for, of the types of the workers it is left with;
        so tasks of a busy type never hold another type's slots. Queued tasks no free slot
        can take count against the prefetch; those no live worker runs count for nothing
        (they are handed back at the next registration).
        """
        return lease_ask(
            [w for w in self.workers.values() if not w.draining],
            self.queue.counts(),
            self.config.prefetch,
        )

    async def _lease_loop(self) -> None:
        while True:
            raise_if_cancelled()
            if self.registration_due():
                await self._register()
                continue
            want, types = self.lease_ask()
            if want <= 0:
                self._credits_changed.clear()
                if self.credits() <= 0:
                    await self._credits_changed.wait()
                continue
            request = LeaseRequest(
                region=self.name,
                instance=self.instance,
                slots=want,
                wait=LEASE_WAIT,
                task_types=types,
            )
            try:
                reply = await self._master(
                    "lease", request, LeaseReply, timeout=LEASE_WAIT + MASTER_TIMEOUT
                )
            except (NotFoundError, ConflictError):
                self._forget_leases()
                continue
            except EngineUnavailableError as exc:
                log.warning("lease request failed: %s", exc)
                await asyncio.sleep(0.2)
                continue
            if reply.tasks:
                for task in reply.tasks:
                    self.queue.push(task)
                self._dispatch()

    # -- upward reports and liveness -------------------------------------------------------

    async def _report_loop(self) -> None:
        """Send worker news to the master, one batch in flight; heartbeat when idle.

        Idle, it reports every tenth of its lease: the master logs a renewal at most every
        twentieth, so a dead region's lease ends between 0.85 and 1.0 lease after it died.
        """
        while True:
            interval = max(0.1, self._lease_seconds / RENEWALS_PER_LEASE)
            # asyncio.timeout, not wait_for: 3.11's wait_for swallows a cancellation that
            # arrives as the event is set (gh-86296), and this event is set all the time.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._outbox_ready.wait()
            self._outbox_ready.clear()
            box, self._outbox = self._outbox, Outbox()
            request = RegionReport(
                region=self.name,
                instance=self.instance,
                started=box.started,
                progress=box.progress,
                outcomes=box.outcomes,
                late=box.late,
                workers=[w.view(self.name) for w in self.workers.values()],
                task_types=sorted(self.registered_types),
                held=self._held() if self._held_due() else None,
            )
            replies = await reports.deliver(request, self._send_report, self.engine.max_payload)
            for reply in replies:
                for task_id, attempt in reply.cancel:
                    for worker in self.workers.values():
                        if (task_id, attempt) in worker.running:
                            worker.cancel.add((task_id, attempt))
            ack = encode_ok(Ack())
            for reply_to in box.replies:
                await self._respond(reply_to, ack)

    def _held_due(self) -> bool:
        now = self.clock()
        if now - self._held_sent_at < HELD_EVERY:
            return False
        self._held_sent_at = now
        return True

    def _held(self) -> list[tuple[str, int]]:
        held = [(task.id, task.attempt) for task in self.queue.tasks()]
        for worker in self.workers.values():
            held.extend(worker.running)
        return held

    async def _send_report(self, request: RegionReport) -> RegionReportReply | None:
        delay = 0.05
        while True:
            try:
                return await self._master(
                    "report", request, RegionReportReply, timeout=MASTER_TIMEOUT
                )
            except (NotFoundError, ConflictError):
                # The master forgot this instance (its lease expired): the attempts it held
                # were re-queued, so these reports are stale. Register again and move on;
                # the stale outcomes are counted as duplicates with the next report.
                self._forget_leases()
                self._outbox.late.extend(
                    (o.task_id, o.attempt, o.kind.value) for o in request.outcomes
                )
                self._outbox.late.extend(request.late)
                return None
            except InvalidRequestError:
                raise
            except TierqError as exc:  # unreachable, or the master is between terms
                log.warning("report to master failed, retrying: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _forget_leases(self) -> None:
        """The master no longer knows this instance and has re-queued what it held."""
        dropped = self.queue.drain_all()
        if dropped:
            log.warning(
                "region %s lost its lease; dropped %d queued tasks", self.name, len(dropped)
            )
        self.instance = os.urandom(6).hex()
        self._registered = None
        self._credits_changed.set()


async def run_region(config: RegionConfig) -> None:
    """Entry point of ``tierq region``: connect, register, serve until cancelled."""
    engine = await connect(config.nats.connect_options(name=f"tierq-region-{config.name}"))
    try:
        await Region(config, engine).run()
    finally:
        await engine.close()
