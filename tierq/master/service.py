"""The master process: runs SchedulerState, makes every change durable, serves requests.

Life of a request: the subscription callback hands the payload to a handler, which runs the
core command synchronously (so commands are totally ordered) and gets events back. The events
go to the group committer at once; the reply waits in a FIFO until the append that carries
them is acknowledged, then the events are published on ``<prefix>.events.<kind>`` and the
reply is sent. Many requests ride one append, so durability costs one round trip per batch,
not per task.

Shutdown order: stop serving (unsubscribe), let the committer flush, stop the background loops,
release the leader lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import msgspec

from ..config import MasterConfig
from ..core import Event, SchedulerState, Settings, TaskStarted, event_kind, event_task_id
from ..engine import (
    Engine,
    EventLog,
    GroupCommitter,
    LeaderLease,
    Message,
    SnapshotStore,
    Subjects,
    Subscription,
    connect,
    provision,
)
from ..errors import EngineUnavailableError, FencedError, InvalidRequestError, TierqError
from ..protocol import (
    LeaseReply,
    LeaseRequest,
    TasksReply,
    WaitRequest,
    WorkerView,
    decode,
    encode_error,
    encode_ok,
)
from .handlers import Handlers
from .metrics import LiveMetrics
from .waiters import LeaseParking, ParkedLease, ResultWaiters

log = logging.getLogger("tierq.master")

_TERMINAL_KINDS = frozenset({"task_succeeded", "task_dead", "task_cancelled", "task_skipped"})


@dataclass(slots=True)
class _Outgoing:
    """A reply (and the events behind it) waiting for its append to be acknowledged."""

    commit: asyncio.Future[int] | None
    events: list[Event]
    reply_to: str
    payload: bytes


class Master:
    """One master: leader election, recovery from snapshot + log, then serving."""

    def __init__(self, config: MasterConfig, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        self.subjects = Subjects(config.nats.prefix)
        self.holder = config.holder or f"{socket.gethostname()}:{os.getpid()}"
        self.state = SchedulerState(Settings(), random.Random())
        self.workers: dict[str, WorkerView] = {}
        self.metrics = LiveMetrics()
        self.handlers = Handlers(self.state, self.workers, self.metrics)
        self.parking = LeaseParking()
        self.waiters = ResultWaiters()
        self._outgoing: asyncio.Queue[_Outgoing] = asyncio.Queue()
        self._encoder = msgspec.msgpack.Encoder()
        self._json = msgspec.json.Encoder()
        self._tick_wakeup = asyncio.Event()
        self._event_subjects: dict[str, str] = {}
        self._stopping = asyncio.Event()
        self._log: EventLog | None = None
        self._committer: GroupCommitter | None = None
        self._snapshots: SnapshotStore | None = None
        self._since_snapshot = 0
        self._snapshot_running = False
        self._fresh_log = False
        #: Log sequence of the snapshot the last recovery started from (0: none).
        self.recovered_from_snapshot = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._term_over = asyncio.Event()
        #: Set by tests to simulate a crash: the leader lease is then not released.
        self.crashed = False
        self.ready = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Lead terms until stopped: acquire the lease, recover, serve.

        A term ends when the log refuses an append (another writer got in: a deposed master's
        late append, or a new leader) or the lease is lost. The state may then be behind the
        log, so it is thrown away and the next term recovers from the log again.
        """
        ttl = self.config.leader_lease_seconds
        await provision(self.engine, self.subjects, lease_ttl=ttl)
        lease = LeaderLease(self.engine, self.subjects, ttl=ttl)
        try:
            while not self._stopping.is_set():
                if not await self._still_leader(lease) and not await self._acquire(lease):
                    return
                log.info("master %s is the leader", self.holder)
                self._term_over.clear()
                await self._recover()
                await self._serve(lease)
                if not self._stopping.is_set():
                    log.warning("master %s: term ended; recovering from the log", self.holder)
        finally:
            if not self.crashed:
                with contextlib.suppress(TierqError):
                    await lease.release()

    async def _still_leader(self, lease: LeaderLease) -> bool:
        if not lease.held:
            return False
        try:
            await lease.renew()
        except TierqError:
            return False
        return True

    async def _acquire(self, lease: LeaderLease) -> bool:
        acquire = asyncio.ensure_future(lease.wait_acquire(self.holder))
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({acquire, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not acquire.done():
            acquire.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await acquire
            return False
        acquire.result()
        return True

    def stop(self) -> None:
        self._stopping.set()

    def end_term(self) -> None:
        """Stop serving and recover again (the log moved under us, or the lease is gone)."""
        self._term_over.set()

    async def _recover(self) -> None:
        self._log = EventLog(self.engine, self.subjects)
        self._snapshots = SnapshotStore(self.engine, self.subjects)
        await self._log.open()
        start_seq = 0
        snap = await self._snapshots.latest()
        if snap is not None:
            start_seq, data = snap
            self.state = SchedulerState.restore(data, random.Random())
        else:
            self.state = SchedulerState(Settings(), random.Random())
        self.handlers.state = self.state
        self._outgoing = asyncio.Queue()
        for parked in self.parking.all():
            self.parking.take(parked.region, parked.instance)
        self._since_snapshot = 0
        decoder = msgspec.msgpack.Decoder(list[Event])
        replayed = 0
        async for _seq, payload in self._log.read(after_seq=start_seq):
            for event in decoder.decode(payload):
                self.state.apply(event)
                replayed += 1
        self.recovered_from_snapshot = start_seq
        log.info("recovered from snapshot at %d plus %d events", start_seq, replayed)
        self._fresh_log = start_seq == 0 and replayed == 0

    async def _serve(self, lease: LeaderLease) -> None:
        assert self._log is not None
        self._committer = GroupCommitter(self._log, on_fail=self._committer_failed)
        sub: Subscription | None = None
        try:
            async with self._committer, asyncio.TaskGroup() as tg:
                loops = [
                    tg.create_task(self._reply_loop()),
                    tg.create_task(self._tick_loop()),
                    tg.create_task(self._renew_loop(lease)),
                ]
                sub = await self.engine.subscribe(
                    self.subjects.master_all, cb=self._on_request, queue="tierq-master"
                )
                await self._commit(self._after_recovery(time.time()))
                self.ready.set()
                stopping = asyncio.ensure_future(self._stopping.wait())
                term_over = asyncio.ensure_future(self._term_over.wait())
                await asyncio.wait({stopping, term_over}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                term_over.cancel()
                self.ready.clear()
                await sub.unsubscribe()
                # Let replies already committed go out before the loops stop.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._outgoing.join(), timeout=2.0)
                for loop in loops:
                    loop.cancel()
        finally:
            if sub is not None:
                with contextlib.suppress(TierqError):
                    await sub.unsubscribe()
            for task in list(self._tasks):
                task.cancel()

    def _committer_failed(self, exc: TierqError) -> None:
        """The log refused an append (another writer moved it) or its outcome is unknown:
        this term can accept nothing more, whoever was waiting on it. Recover again."""
        log.error("master %s ends its term: %s", self.holder, exc)
        self.end_term()

    def _after_recovery(self, now: float) -> list[Event]:
        """Events that start a term: initial settings on a new log, fresh region leases.

        Regions could not renew their leases while no master ran, so each gets a new one
        instead of losing its tasks at the first tick.
        """
        events: list[Event] = []
        initial = self.config.initial_settings
        if self._fresh_log and initial is not None:
            events += self.state.configure(initial, now)
        for region in self.state.regions():
            events += self.state.region_heartbeat(region.name, region.instance, now)
        return events

    # -- requests --------------------------------------------------------------------------

    async def _on_request(self, msg: Message) -> None:
        op = msg.subject.rsplit(".", 1)[-1]
        if not msg.reply:
            return
        now = time.time()
        try:
            if op == "lease":
                self._lease(msg, now)
                return
            if op == "wait":
                self._wait(msg, now)
                return
            handler = self.handlers.table.get(op)
            if handler is None:
                raise InvalidRequestError(f"unknown operation {op!r}", field="op")
            handled = handler(msg.data, now)
        except TierqError as exc:
            await msg.respond(encode_error(exc))
            return
        except Exception as exc:  # a bug must not take the master down with it
            log.exception("handler %s failed", op)
            await msg.respond(encode_error(TierqError(f"internal error in {op}: {exc}")))
            return
        try:
            self._send_after_commit(handled.events, msg.reply, encode_ok(handled.reply))
        except TierqError as exc:  # the term is ending: the committer takes nothing more
            await msg.respond(encode_error(exc))
            return
        if handled.events:
            self._after_change(now)

    def _send_after_commit(self, events: list[Event], reply_to: str, payload: bytes) -> None:
        commit = self._commit(events) if events else None
        self._outgoing.put_nowait(_Outgoing(commit, events, reply_to, payload))

    def _commit(self, events: list[Event]) -> asyncio.Future[int]:
        assert self._committer is not None
        encode = self._encoder.encode
        self._since_snapshot += len(events)
        return self._committer.submit([encode(ev) for ev in events])

    def _after_change(self, now: float) -> None:
        """Work may have become ready: serve parked region leases, re-plan the tick."""
        if len(self.parking):
            for parked in self.parking.all():
                self._try_parked(parked, now)
        self._tick_wakeup.set()

    def _lease(self, msg: Message, now: float) -> None:
        req = decode(msg.data, LeaseRequest)
        if req.slots < 0:
            raise InvalidRequestError("slots must not be negative", field="slots")
        self.parking.take(req.region, req.instance)
        events, tasks = self.state.lease(req.region, req.instance, req.slots, now)
        wait = min(req.wait, self.config.max_lease_wait)
        if tasks or wait <= 0 or req.slots == 0:
            self._send_after_commit(events, msg.reply, encode_ok(LeaseReply(tasks=tasks)))
            return
        parked = ParkedLease(req.region, req.instance, req.slots, msg.reply, now + wait)
        loop = asyncio.get_running_loop()
        parked.handle = loop.call_later(wait, self._expire_parked, parked)
        self.parking.park(parked)

    def _try_parked(self, parked: ParkedLease, now: float) -> None:
        try:
            events, tasks = self.state.lease(parked.region, parked.instance, parked.slots, now)
        except TierqError as exc:
            self.parking.take(parked.region, parked.instance)
            self._outgoing.put_nowait(_Outgoing(None, [], parked.reply, encode_error(exc)))
            return
        if tasks:
            self.parking.take(parked.region, parked.instance)
            self._send_after_commit(events, parked.reply, encode_ok(LeaseReply(tasks=tasks)))

    def _expire_parked(self, parked: ParkedLease) -> None:
        if self.parking.parked.get((parked.region, parked.instance)) is parked:
            self.parking.take(parked.region, parked.instance)
            self._outgoing.put_nowait(
                _Outgoing(None, [], parked.reply, encode_ok(LeaseReply(tasks=[])))
            )

    def _wait(self, msg: Message, now: float) -> None:
        req = decode(msg.data, WaitRequest)
        if not req.ids:
            raise InvalidRequestError("wait needs at least one task id", field="ids")
        for task_id in req.ids:
            self.state.get(task_id)  # unknown ids fail now, not after the timeout
        self._spawn(self._wait_and_reply(req, msg.reply))

    async def _wait_and_reply(self, req: WaitRequest, reply_to: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, min(req.timeout, 3600.0))
        for task_id in req.ids:
            while not self.handlers.terminal(task_id):
                fut: asyncio.Future[None] = loop.create_future()
                self.waiters.add(task_id, fut)
                try:
                    await asyncio.wait_for(fut, max(0.0, deadline - loop.time()))
                except TimeoutError:
                    break
                finally:
                    self.waiters.discard(task_id, fut)
        tasks = [t for t in (self.handlers.find(i) for i in req.ids) if t is not None]
        await self._respond(reply_to, encode_ok(TasksReply(tasks=tasks)))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a short-lived helper task; kept referenced and cancelled on shutdown."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _respond(self, reply_to: str, payload: bytes) -> None:
        with contextlib.suppress(EngineUnavailableError):
            await self.engine.publish(reply_to, payload)

    # -- background loops ------------------------------------------------------------------

    async def _reply_loop(self) -> None:
        """Send replies in commit order, after their events are durable; publish the events."""
        while True:
            out = await self._outgoing.get()
            try:
                await self._deliver(out)
            finally:
                self._outgoing.task_done()

    async def _deliver(self, out: _Outgoing) -> None:
        if out.commit is not None:
            try:
                await out.commit
            except TierqError as exc:
                if isinstance(exc, FencedError):
                    log.error("master %s was fenced: the log moved under it", self.holder)
                    self.end_term()
                if out.reply_to:
                    await self._respond(out.reply_to, encode_error(exc))
                return
            await self._publish_events(out.events)
        if out.reply_to:
            await self._respond(out.reply_to, out.payload)
        if self._outgoing.empty():
            self._maybe_snapshot()

    async def _publish_events(self, events: list[Event]) -> None:
        """Fan the committed events out on ``<prefix>.events.<kind>``, one message each."""
        finished: list[str] = []
        subject_of = self._event_subjects
        encode = self._json.encode
        messages: list[tuple[str, bytes]] = []
        observe = self.metrics.observe
        for event in events:
            kind = event_kind(event)
            observe(kind, event.at)
            if type(event) is TaskStarted:
                self.metrics.started(event.id, event.attempt, event.at)
            subject = subject_of.get(kind)
            if subject is None:
                subject = subject_of[kind] = self.subjects.event(kind)
            messages.append((subject, encode(event)))
            if kind in _TERMINAL_KINDS:
                task_id = event_task_id(event)
                if task_id is not None:
                    finished.append(task_id)
        with contextlib.suppress(EngineUnavailableError):
            await self.engine.publish_many(messages)
        if finished and self.waiters.by_task:
            self.waiters.wake(finished)

    async def _tick_loop(self) -> None:
        """Run ``tick`` whenever the core says time-driven work is due."""
        while True:
            now = time.time()
            events = self.state.tick(now)
            if events:
                self._outgoing.put_nowait(_Outgoing(self._commit(events), events, "", b""))
                self._after_change(now)
            wake = self.state.next_wakeup()
            delay = 1.0 if wake is None else min(1.0, max(0.0, wake - time.time()))
            self._tick_wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._tick_wakeup.wait(), timeout=max(delay, 0.001))

    async def _renew_loop(self, lease: LeaderLease) -> None:
        interval = self.config.leader_lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await lease.renew()
            except FencedError:
                log.error("master %s lost the leader lease", self.holder)
                self.end_term()
                return
            except EngineUnavailableError as exc:
                log.warning("could not renew the leader lease: %s", exc)

    def _maybe_snapshot(self) -> None:
        """Snapshot every ``snapshot_every`` events so recovery replays a bounded tail.

        The state already includes every event handed to the committer, so an empty
        submission right after encoding resolves with exactly the log sequence it covers.
        """
        if self._since_snapshot < self.config.snapshot_every or self._snapshot_running:
            return
        if self._committer is None:
            return
        data = self.state.snapshot()
        covered = self._committer.submit([])
        self._since_snapshot = 0
        self._snapshot_running = True
        self._spawn(self._store_snapshot(covered, data))

    async def _store_snapshot(self, covered: asyncio.Future[int], data: bytes) -> None:
        assert self._snapshots is not None and self._log is not None
        seq: int | None = None
        try:
            seq = await covered
            await self._snapshots.put(seq, data)
            await self._log.purge(upto_seq=seq)
            log.info("snapshot at log sequence %d (%d bytes)", seq, len(data))
        except TierqError as exc:
            log.warning("snapshot at log sequence %s failed: %s", seq, exc)
        finally:
            self._snapshot_running = False


async def run_master(
    config: MasterConfig, ready: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Entry point of ``tierq master``: connect, lead, serve until cancelled."""
    engine = await connect(config.nats.connect_options(name="tierq-master"))
    master = Master(config, engine)
    try:
        await master.run()
    finally:
        await engine.close()
