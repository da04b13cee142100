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
import logging
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import msgspec

from ..config import RegionConfig
from ..core.model import (
    LeasedTask,
    Outcome,
    OutcomeKind,
    Progress,
    RegionInfo,
    Started,
)
from ..engine import Engine, Message, Subjects, Subscription, connect
from ..errors import (
    ConflictError,
    EngineUnavailableError,
    InvalidRequestError,
    NotFoundError,
    TierqError,
)
from ..protocol import (
    Ack,
    DrainRequest,
    LeaseReply,
    LeaseRequest,
    PullReply,
    PullRequest,
    RegionReport,
    RegionReportReply,
    RegisterRegionReply,
    RegisterRegionRequest,
    RegisterWorkerReply,
    RegisterWorkerRequest,
    WorkerHeartbeat,
    WorkerHeartbeatReply,
    WorkerReport,
    decode,
    decode_reply,
    encode,
    encode_error,
    encode_ok,
)
from . import reports
from .door import check_heartbeat, check_pull, check_register, check_report
from .local import LocalQueue, Outbox, ParkedPull, WorkerSlot, lost_outcome

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


class Region:
    """One region process."""

    def __init__(self, config: RegionConfig, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        self.name = config.name
        self.instance = os.urandom(6).hex()
        self.subjects = Subjects(config.nats.prefix)
        self.queue = LocalQueue()
        self.workers: dict[str, WorkerSlot] = {}
        self._parked: dict[str, ParkedPull] = {}
        self._outbox = Outbox()
        self._outbox_ready = asyncio.Event()
        self._credits_changed = asyncio.Event()
        #: (instance, task types) the master last confirmed; None until the first
        #: registration of the current instance completes.
        self._registered: tuple[str, frozenset[str]] | None = None
        self._lease_seconds = 10.0
        self._held_sent_at = time.monotonic()
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
            subs.append(
                await self.engine.subscribe(s.event("task_cancelled"), cb=self._on_cancelled)
            )
            await self._register()
            self.ready.set()
            async with asyncio.TaskGroup() as tg:
                for loop in (self._lease_loop, self._report_loop, self._liveness_loop):
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
            try:
                await loop()
            except Exception:
                log.exception("region %s: %s failed; restarting it", self.name, loop.__name__)
                await asyncio.sleep(0.5)

    async def _master(
        self, op: str, request: object, reply_type: type[T], timeout: float = 10.0
    ) -> T:
        data = await self.engine.request(self.subjects.master(op), encode(request), timeout=timeout)
        return decode_reply(data, reply_type)

    def live_types(self) -> frozenset[str]:
        """Task types some live worker here takes (a draining worker takes nothing new)."""
        return frozenset().union(*(w.task_types for w in self.workers.values() if not w.draining))

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
                self._give_back(types)
            return

    def _give_back(self, registered: frozenset[str]) -> None:
        """Hand back to the master the queued tasks no live worker here can run.

        Called once the master knows the region no longer offers their types, so it will not
        lease them here again. They go back as lost attempts (re-queued at once, counted like
        any lost attempt), with the reason in their history.
        """
        keep = registered | self.live_types()
        orphans = self.queue.take_types(keep)
        if not orphans:
            return
        by_type: dict[str, int] = {}
        for task in orphans:
            by_type[task.name] = by_type.get(task.name, 0) + 1
            why = f"no live worker in region {self.name} runs {task.name!r}"
            self._outbox.outcomes.append(lost_outcome(task.id, task.attempt, "NoWorker", why))
        for name, count in sorted(by_type.items()):
            log.warning(
                "region %s: no live worker runs %r; handing %d queued tasks back to the master",
                self.name,
                name,
                count,
            )
        self._outbox_ready.set()
        self._credits_changed.set()

    # -- credits and leasing ---------------------------------------------------------------

    def credits(self) -> int:
        """Free slots of live workers plus prefetch, minus the queued tasks they can run.

        Queued tasks no live worker takes do not count: they are handed back at the next
        registration instead of holding capacity another type could use.
        """
        free = sum(w.free for w in self.workers.values())
        return max(0, free + self.config.prefetch - self.queue.count_for(self.live_types()))

    async def _lease_loop(self) -> None:
        while True:
            if self.registration_due():
                await self._register()
                continue
            want = self.credits()
            if want <= 0:
                self._credits_changed.clear()
                if self.credits() <= 0:
                    await self._credits_changed.wait()
                continue
            request = LeaseRequest(
                region=self.name, instance=self.instance, slots=want, wait=LEASE_WAIT
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

    # -- workers ---------------------------------------------------------------------------

    async def _on_register(self, msg: Message) -> None:
        if not msg.reply:
            return  # a request nobody waits for is not one a worker sent
        try:
            req = decode(msg.data, RegisterWorkerRequest)
            check_register(req)
        except TierqError as exc:
            await msg.respond(encode_error(exc))
            return
        old = self.workers.get(req.worker)
        slot = WorkerSlot(
            id=req.worker,
            task_types=frozenset(req.task_types),
            concurrency=req.concurrency,
            pool=req.pool,
            host=req.host,
            pid=req.pid,
            last_heartbeat=time.time(),
        )
        if old is not None:
            slot.running = old.running
        self.workers[req.worker] = slot
        self._credits_changed.set()
        await msg.respond(
            encode_ok(
                RegisterWorkerReply(
                    lease_seconds=self.config.worker_lease_seconds,
                    heartbeat_interval=self.config.heartbeat_interval,
                )
            )
        )

    async def _on_pull(self, msg: Message) -> None:
        if not msg.reply:
            return
        try:
            req = decode(msg.data, PullRequest)
            check_pull(req)
        except TierqError as exc:
            await msg.respond(encode_error(exc))
            return
        worker = self.workers.get(req.worker)
        if worker is None:
            await msg.respond(
                encode_error(NotFoundError(f"worker {req.worker!r} is not registered here"))
            )
            return
        worker.last_heartbeat = time.time()
        old = self._parked.pop(req.worker, None)
        if old is not None:
            old.handle.cancel()
            await self._respond(old.reply, encode_ok(PullReply()))
        if worker.draining:
            await msg.respond(encode_ok(PullReply(drain=True)))
            return
        # The worker's own count of free slots is the truth: the region's view of what it runs
        # lags by the outcome reports still on their way.
        slots = max(0, min(req.slots, worker.concurrency))
        tasks = self._hand_out(worker, slots) if slots > 0 else []
        if tasks or req.wait <= 0:
            await msg.respond(encode_ok(PullReply(tasks=tasks)))
            return
        loop = asyncio.get_running_loop()
        handle = loop.call_later(min(req.wait, 30.0), self._expire_pull, req.worker, msg.reply)
        self._parked[req.worker] = ParkedPull(req.worker, slots, msg.reply, handle)
        self._credits_changed.set()

    def _expire_pull(self, worker: str, reply: str) -> None:
        parked = self._parked.get(worker)
        if parked is not None and parked.reply == reply:
            del self._parked[worker]
            self._spawn(self._respond(reply, encode_ok(PullReply())))

    def _hand_out(self, worker: WorkerSlot, slots: int) -> list[LeasedTask]:
        tasks = self.queue.pop_for(worker.task_types, slots)
        for task in tasks:
            worker.running[(task.id, task.attempt)] = task
            # Handing a task to a worker that pulled for a free slot is the start of the attempt.
            self._outbox.started.append(
                Started(task_id=task.id, attempt=task.attempt, worker=worker.id)
            )
        if tasks:
            self._outbox_ready.set()
        return tasks

    def _dispatch(self) -> None:
        """Answer parked pulls from the local queue."""
        for worker_id, parked in list(self._parked.items()):
            worker = self.workers.get(worker_id)
            if worker is None:
                continue
            tasks = self._hand_out(worker, parked.slots)
            if tasks:
                del self._parked[worker_id]
                parked.handle.cancel()
                self._spawn(self._respond(parked.reply, encode_ok(PullReply(tasks=tasks))))
            if not len(self.queue):
                break

    async def _on_heartbeat(self, msg: Message) -> None:
        if not msg.reply:
            return
        try:
            req = decode(msg.data, WorkerHeartbeat)
            check_heartbeat(req)
        except TierqError as exc:
            await msg.respond(encode_error(exc))
            return
        worker = self.workers.get(req.worker)
        if worker is None:
            await msg.respond(encode_ok(WorkerHeartbeatReply(unknown=True)))
            return
        worker.last_heartbeat = time.time()
        if req.draining and not worker.draining:
            worker.draining = True
            self._credits_changed.set()  # its types may no longer be live here
            # Answer its parked pull now so the worker can exit without waiting it out.
            parked = self._parked.pop(worker.id, None)
            if parked is not None:
                parked.handle.cancel()
                await self._respond(parked.reply, encode_ok(PullReply(drain=True)))
        running = {(task_id, attempt) for task_id, attempt in req.running}
        cancel = [a for a in worker.cancel if a in running]
        # A cancelled attempt is not reported back; its slot is free once the worker is told
        # (the worker itself keeps the slot busy until the code really stopped).
        for attempt in cancel:
            worker.running.pop(attempt, None)
        # Keep asking for attempts handed out after this heartbeat was sent.
        worker.cancel.intersection_update(worker.running)
        if cancel:
            self._credits_changed.set()
        await msg.respond(encode_ok(WorkerHeartbeatReply(cancel=cancel, drain=worker.draining)))

    async def _on_report(self, msg: Message) -> None:
        if not msg.reply:
            return
        try:
            req = decode(msg.data, WorkerReport)
            check_report(req)
        except TierqError as exc:
            await msg.respond(encode_error(exc))
            return
        worker = self.workers.get(req.worker)
        outcomes: list[Outcome] = []
        progress: list[Progress] = []
        if worker is not None:
            worker.last_heartbeat = time.time()
            held = worker.running
            # Only the worker holding an attempt may end it or report on it.
            progress = [p for p in req.progress if (p.task_id, p.attempt) in held]
            for outcome in req.outcomes:
                key = (outcome.task_id, outcome.attempt)
                if held.pop(key, None) is None:
                    continue
                if outcome.worker != worker.id:
                    # The holder's id (checked at registration) is what the master records.
                    outcome = msgspec.structs.replace(outcome, worker=worker.id)
                outcomes.append(outcome)
                if outcome.kind is OutcomeKind.SUCCEEDED:
                    worker.completed += 1
                else:
                    worker.failed += 1
                worker.cancel.discard(key)
        box = self._outbox
        box.progress.extend(progress)
        box.outcomes.extend(outcomes)
        box.replies.append(msg.reply)
        self._outbox_ready.set()
        if outcomes:
            self._credits_changed.set()
            if self._parked and len(self.queue):
                self._dispatch()

    async def _on_control(self, msg: Message) -> None:
        if not msg.reply:
            return
        try:
            req = decode(msg.data, DrainRequest)
        except TierqError as exc:
            await msg.respond(encode_error(exc))
            return
        targets = [self.workers[req.worker]] if req.worker in self.workers else []
        if req.worker is None:
            targets = list(self.workers.values())
        elif not targets:
            await msg.respond(
                encode_error(NotFoundError(f"no worker {req.worker!r} in region {self.name}"))
            )
            return
        self._credits_changed.set()
        for worker in targets:
            worker.draining = True
            parked = self._parked.pop(worker.id, None)
            if parked is not None:
                parked.handle.cancel()
                await self._respond(parked.reply, encode_ok(PullReply(drain=True)))
        await msg.respond(encode_ok(Ack(events=len(targets))))

    async def _on_cancelled(self, msg: Message) -> None:
        try:
            event = msgspec.json.decode(msg.data)
        except msgspec.DecodeError:
            return
        task_id = event.get("id") if isinstance(event, dict) else None
        if not isinstance(task_id, str):
            return
        if self.queue.remove(task_id) is not None:
            self._credits_changed.set()
            return
        for worker in self.workers.values():
            for attempt in worker.running:
                if attempt[0] == task_id:
                    worker.cancel.add(attempt)

    # -- upward reports and liveness -------------------------------------------------------

    async def _report_loop(self) -> None:
        """Send worker news to the master, one batch in flight; heartbeat when idle."""
        interval = max(0.2, self._lease_seconds / 4)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox_ready.wait(), timeout=interval)
            self._outbox_ready.clear()
            box, self._outbox = self._outbox, Outbox()
            request = RegionReport(
                region=self.name,
                instance=self.instance,
                started=box.started,
                progress=box.progress,
                outcomes=box.outcomes,
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
        now = time.monotonic()
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
                # were re-queued, so these reports are stale. Register again and move on.
                self._forget_leases()
                return None
            except InvalidRequestError:
                raise
            except TierqError as exc:  # unreachable, or the master is between terms
                log.warning("report to master failed, retrying: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _liveness_loop(self) -> None:
        """Workers that stopped heartbeating lose their attempts (re-queued by the master)."""
        lease = self.config.worker_lease_seconds
        while True:
            await asyncio.sleep(min(1.0, lease / 4))
            now = time.time()
            for worker in [w for w in self.workers.values() if now - w.last_heartbeat > lease]:
                log.warning(
                    "worker %s missed its lease; re-queueing %d tasks",
                    worker.id,
                    len(worker.running),
                )
                del self.workers[worker.id]
                parked = self._parked.pop(worker.id, None)
                if parked is not None:
                    parked.handle.cancel()
                why = f"worker {worker.id} stopped heartbeating"
                for task_id, attempt in worker.running:
                    self._outbox.outcomes.append(
                        lost_outcome(task_id, attempt, "WorkerLost", why, worker.id)
                    )
                self._outbox_ready.set()
                self._credits_changed.set()

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

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Send a reply from sync code; the task is kept referenced and cancelled on exit."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _respond(self, reply_to: str, payload: bytes) -> None:
        with contextlib.suppress(EngineUnavailableError):
            await self.engine.publish(reply_to, payload)


async def run_region(config: RegionConfig) -> None:
    """Entry point of ``tierq region``: connect, register, serve until cancelled."""
    engine = await connect(config.nats.connect_options(name=f"tierq-region-{config.name}"))
    try:
        await Region(config, engine).run()
    finally:
        await engine.close()
