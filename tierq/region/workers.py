"""The worker side of a region: registration, long-poll pulls, heartbeats, reports, drains,
cancellation and worker leases.

:class:`WorkerSide` is the base of :class:`tierq.region.service.Region`, which owns the
state declared here and the master side (registration, leasing, upward reports).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

import msgspec

from ..config import RegionConfig
from ..core.model import LeasedTask, Outcome, OutcomeKind, Progress, Started
from ..core.validate import RESERVED_TASK_NAMES
from ..engine import Engine, Message, raise_if_cancelled
from ..errors import (
    EngineUnavailableError,
    NoRespondersError,
    NotFoundError,
    PermissionDeniedError,
    TierqError,
)
from ..protocol import (
    Ack,
    DrainRequest,
    PullReply,
    PullRequest,
    RegisterWorkerReply,
    RegisterWorkerRequest,
    WorkerHeartbeat,
    WorkerHeartbeatReply,
    WorkerReport,
    decode,
    encode_error,
    encode_ok,
)
from .door import cancelled_id, check_heartbeat, check_pull, check_register, check_report
from .local import LocalQueue, Outbox, ParkedPull, WorkerSlot, lost_outcome

log = logging.getLogger("tierq.region")


class _FromWorker(Protocol):
    @property
    def worker(self) -> str: ...


R = TypeVar("R", bound=_FromWorker)

#: How long a probe of a silent worker may take (a live worker answers in milliseconds).
PROBE_TIMEOUT = 1.0
#: Pause before the second probe that confirms a worker's connection is gone.
PROBE_RECHECK = 0.2
#: An attempt handed to a worker and missing from two of its heartbeats in a row, the first
#: at least this long after the hand-out, never reached it (see ``_reconcile``), seconds.
HANDOUT_GRACE = 2.0


class WorkerSide:
    """Answers the region's workers; see the module docstring."""

    config: RegionConfig
    engine: Engine
    #: The region's one clock (seconds; the wall clock unless a test passes another).
    clock: Callable[[], float]
    name: str
    #: This region process as workers see it.
    process: str
    queue: LocalQueue
    workers: dict[str, WorkerSlot]
    _parked: dict[str, ParkedPull]
    _outbox: Outbox
    _outbox_ready: asyncio.Event
    _credits_changed: asyncio.Event
    _tasks: set[asyncio.Task[None]]

    async def _on_register(self, msg: Message, trusted: bool = False) -> None:
        req = await self._admit(msg, RegisterWorkerRequest, check_register, trusted)
        if req is None:
            return
        old = self.workers.get(req.worker)
        slot = WorkerSlot(
            id=req.worker,
            task_types=frozenset(req.task_types),
            concurrency=req.concurrency,
            pool=req.pool,
            host=req.host,
            pid=req.pid,
            last_heartbeat=self.clock(),
            probe=req.probe,
            trusted=trusted,
            declared=dict(req.declared),
        )
        if old is not None:
            slot.running, slot.handed_at = old.running, old.handed_at
        self.workers[req.worker] = slot
        self._credits_changed.set()
        await msg.respond(
            encode_ok(
                RegisterWorkerReply(
                    lease_seconds=self.config.worker_lease_seconds,
                    heartbeat_interval=self.config.heartbeat_interval,
                    region_instance=self.process,
                )
            )
        )

    async def _admit(
        self, msg: Message, typ: type[R], check: Callable[[R], None], trusted: bool
    ) -> R | None:
        """A worker's request, decoded and checked at the door; None when it was refused
        (answered with the error) or when nobody waits for an answer (no worker sent it)."""
        if not msg.reply:
            return None
        try:
            req = decode(msg.data, typ)
            check(req)
            if not trusted:
                types = req.task_types if isinstance(req, RegisterWorkerRequest) else ()
                self._check_untrusted(req.worker, types)
        except TierqError as exc:
            await msg.respond(encode_error(exc))
            return None
        return req

    def _check_untrusted(self, worker: str, task_types: Sequence[str] = ()) -> None:
        """Refuse what came on the ordinary subjects but only the trusted ones may do."""
        reserved = sorted(set(task_types) & RESERVED_TASK_NAMES)
        if reserved:
            raise PermissionDeniedError(
                f"task type {reserved[0]!r} is reserved: only the API's in-process runner serves it"
            )
        slot = self.workers.get(worker)
        if slot is not None and slot.trusted:
            raise PermissionDeniedError(
                f"worker {worker!r} is the API's runner: it is served on its own subjects only"
            )

    async def _on_pull(self, msg: Message, trusted: bool = False) -> None:
        req = await self._admit(msg, PullRequest, check_pull, trusted)
        if req is None:
            return
        worker = self.workers.get(req.worker)
        if worker is None:
            await msg.respond(
                encode_error(NotFoundError(f"worker {req.worker!r} is not registered here"))
            )
            return
        worker.last_heartbeat = self.clock()
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
        now = self.clock()
        for task in tasks:
            worker.running[(task.id, task.attempt)] = task
            worker.handed_at[(task.id, task.attempt)] = now
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

    async def _on_heartbeat(self, msg: Message, trusted: bool = False) -> None:
        req = await self._admit(msg, WorkerHeartbeat, check_heartbeat, trusted)
        if req is None:
            return
        worker = self.workers.get(req.worker)
        if worker is None:
            reply = WorkerHeartbeatReply(unknown=True, region_instance=self.process)
            await msg.respond(encode_ok(reply))
            return
        worker.last_heartbeat = self.clock()
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
        self._reconcile(worker, running)
        reply = WorkerHeartbeatReply(
            cancel=cancel, drain=worker.draining, region_instance=self.process
        )
        await msg.respond(encode_ok(reply))

    def _reconcile(self, worker: WorkerSlot, held: set[tuple[str, int]]) -> None:
        """Give back the attempts handed to ``worker`` that never reached it.

        A pull's reply is lost when the worker's connection drops as it is sent (its NATS
        server died, say): the worker never runs those tasks, and the region would count them
        against its slots for good and stop leasing for it. The heartbeat lists what the
        worker runs and what it has an unacknowledged outcome for, so an attempt missing from
        two heartbeats in a row, the first ``HANDOUT_GRACE`` after the hand-out (a heartbeat
        sent before the reply arrived cannot be both), never arrived: it goes back to the
        master as a lost attempt, re-queued at once.
        """
        now = self.clock()
        handed = worker.handed_at
        for key in [k for k in handed if k not in worker.running]:
            del handed[key]
        unlisted = {k for k in worker.running if k not in held}
        gone = [k for k in unlisted & worker.unlisted if now - handed.get(k, 0.0) >= HANDOUT_GRACE]
        worker.unlisted = unlisted.difference(gone)
        if not gone:
            return
        log.warning(
            "worker %s never received %d attempts handed to it; they go back",
            worker.id,
            len(gone),
        )
        why = f"worker {worker.id} never received the attempt (the reply handing it out was lost)"
        for task_id, attempt in gone:
            del worker.running[(task_id, attempt)]
            handed.pop((task_id, attempt), None)
            self._outbox.outcomes.append(
                lost_outcome(task_id, attempt, "HandOutLost", why, worker.id)
            )
        self._outbox_ready.set()
        self._credits_changed.set()

    async def _on_report(self, msg: Message, trusted: bool = False) -> None:
        req = await self._admit(msg, WorkerReport, check_report, trusted)
        if req is None:
            return
        worker = self.workers.get(req.worker)
        outcomes: list[Outcome] = []
        progress: list[Progress] = []
        late = req.outcomes if worker is None else []
        if worker is not None:
            worker.last_heartbeat = self.clock()
            held = worker.running
            # Only the worker holding an attempt may end it or report on it.
            progress = [p for p in req.progress if (p.task_id, p.attempt) in held]
            for outcome in req.outcomes:
                key = (outcome.task_id, outcome.attempt)
                if held.pop(key, None) is None:
                    late.append(outcome)
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
        if late:
            # Declared lost already (or never handed to this worker): not applied, but the
            # master counts each one as a duplicate report.
            log.warning(
                "worker %s reported %d attempts it does not hold here (late or unknown); "
                "counted as duplicates",
                req.worker,
                len(late),
            )
            box.late.extend((o.task_id, o.attempt, o.kind.value) for o in late)
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
        task_id = cancelled_id(msg.data)
        if task_id is None:
            return
        if self.queue.remove(task_id) is not None:
            self._credits_changed.set()
            return
        for worker in self.workers.values():
            for attempt in worker.running:
                if attempt[0] == task_id:
                    worker.cancel.add(attempt)

    async def _liveness_loop(self) -> None:
        """Workers that stopped heartbeating lose their attempts (re-queued by the master).

        A worker late by half a heartbeat interval is probed on its own subject: NATS
        answering "no responders" means its connection is gone (the process died), and it
        is lost at once instead of at the end of its lease. A worker that is only slow (or
        a probe that times out) keeps its full lease, so this adds no false alarms.
        """
        lease = self.config.worker_lease_seconds
        beat = self.config.heartbeat_interval
        suspect = beat * 1.5
        while True:
            raise_if_cancelled()
            await asyncio.sleep(min(0.25, lease / 4))
            now = self.clock()
            for worker in list(self.workers.values()):
                silent = now - worker.last_heartbeat
                if silent > lease:
                    self._lose(worker, "stopped heartbeating")
                elif silent > suspect and worker.probe and now - worker.probed_at >= beat:
                    worker.probed_at = now
                    self._spawn(self._probe(worker))

    async def _probe(self, worker: WorkerSlot) -> None:
        """Lose ``worker`` if NATS says twice, a moment apart, that nobody serves its probe
        subject (once could be a reconnect in progress)."""
        for attempt in range(2):
            if attempt:
                await asyncio.sleep(PROBE_RECHECK)
            try:
                await self.engine.request(worker.probe, b"", timeout=PROBE_TIMEOUT)
            except NoRespondersError:
                continue
            except TierqError:
                return  # slow or unreachable: its lease decides
            return  # it answered: alive
        if self.workers.get(worker.id) is worker:
            self._lose(worker, "lost its connection (no responders on its probe subject)")

    def _lose(self, worker: WorkerSlot, what: str) -> None:
        log.warning("worker %s %s; re-queueing %d tasks", worker.id, what, len(worker.running))
        del self.workers[worker.id]
        parked = self._parked.pop(worker.id, None)
        if parked is not None:
            parked.handle.cancel()
        why = f"worker {worker.id} {what}"
        for task_id, attempt in worker.running:
            self._outbox.outcomes.append(
                lost_outcome(task_id, attempt, "WorkerLost", why, worker.id)
            )
        self._outbox_ready.set()
        self._credits_changed.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Send a reply from sync code; the task is kept referenced and cancelled on exit."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _respond(self, reply_to: str, payload: bytes) -> None:
        with contextlib.suppress(EngineUnavailableError):
            await self.engine.publish(reply_to, payload)
