"""The master process: runs SchedulerState, makes every change durable, serves requests.

Life of a request: the subscription callback hands the payload to a handler, which runs the
core command synchronously (so commands are totally ordered) and gets events back. The events
go to the group committer at once; the reply waits in a FIFO until the append that carries
them is acknowledged, then the events are published on ``<prefix>.events.<kind>`` and the
reply is sent. Many requests ride one append, so durability costs one round trip per batch,
not per task.

Every reply waits in that FIFO, also one with no events of its own (a read, an idempotent
repeat): it rides an empty submission, which resolves only once everything submitted before it
is durable, so nothing is acknowledged that a failed append could take back. A reply with no
events is sent only while the leader lease is surely held (``leadership.py``), so a deposed
master never answers a read from its old state.

Shutdown order: stop serving (unsubscribe), let the committer flush, stop the background loops,
release the leader lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import msgspec

from ..config import MasterConfig
from ..core import Event, SchedulerState
from ..engine import (
    Engine,
    EventLog,
    GroupCommitter,
    IntakeStream,
    LeaderLease,
    Message,
    SnapshotStore,
    Subjects,
    Subscription,
    connect,
    provision,
    raise_if_cancelled,
    replicas_for,
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
from .intake import IntakeApplier, intake_behind, may_be_unapplied
from .leadership import Leadership
from .metrics import LiveMetrics
from .publish import EventPublisher
from .recovery import Recovery, term_start_events
from .schedule_ops import fire_due
from .waiters import LeaseParking, ParkedLease, ResultWaiters

log = logging.getLogger("tierq.master")

#: Most tasks one lease request may ask for.
MAX_LEASE_SLOTS = 100_000


@dataclass(slots=True)
class _Outgoing:
    """A reply (and the events behind it) waiting for its append to be acknowledged."""

    commit: asyncio.Future[int]
    events: list[Event]
    reply_to: str
    payload: bytes


class Master:
    """One master: stands by (keeping its state warm), leads terms, serves."""

    def __init__(
        self,
        config: MasterConfig,
        engine: Engine,
        *,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``wall_clock`` and ``monotonic``: the clocks of :meth:`now` (tests inject them)."""
        self.config = config
        self.engine = engine
        self._wall = wall_clock
        self._monotonic = monotonic
        self.subjects = Subjects(config.nats.prefix)
        self.holder = config.holder or f"{socket.gethostname()}:{os.getpid()}"
        #: Replicas of every stream and bucket (each re-provisions its own when it opens).
        self.replicas = n = replicas_for(config.replicas, engine.cluster)
        self.recovery = Recovery(
            EventLog(engine, self.subjects, replicas=n),
            SnapshotStore(engine, self.subjects, replicas=n),
        )
        self.leadership = Leadership(
            LeaderLease(engine, self.subjects, ttl=config.leader_lease_seconds, replicas=n),
            self.holder,
            ttl=config.leader_lease_seconds,
        )
        self.intake_stream = IntakeStream(engine, self.subjects)
        self._intake: IntakeApplier | None = None
        self.workers: dict[str, WorkerView] = {}
        self.metrics = LiveMetrics()
        self.handlers = Handlers(self.state, self.workers, self.metrics)
        self.parking = LeaseParking()
        self.waiters = ResultWaiters()
        self.publisher = EventPublisher(
            engine,
            self.subjects,
            self.metrics,
            self.waiters,
            task_name=lambda task_id: self.state.latency_type(task_id),
        )
        self._outgoing: asyncio.Queue[_Outgoing] = asyncio.Queue()
        self._encoder = msgspec.msgpack.Encoder()
        self._tick_wakeup = asyncio.Event()
        #: When the tick loop wakes next on its own (0: it is running or about to).
        self._tick_at = 0.0
        self._stopping = asyncio.Event()
        self._committer: GroupCommitter | None = None
        self._since_snapshot = 0
        self._snapshot_running = False
        self._standby_logged = False
        self._fresh_log = False
        #: Set when this term applied something the log may not get (see ``_fail_stop``).
        self._term_dirty = False
        # Wall time at the start of the term and the monotonic clock then: within a term
        # time comes from the monotonic clock, so setting the wall clock moves no deadline.
        self._epoch = (wall_clock(), monotonic())
        self._tasks: set[asyncio.Task[None]] = set()
        self._term_over = asyncio.Event()
        #: Whether ``run`` gives the lease up when it returns (a clean stop does; a test that
        #: simulates a crash sets it False so that a standby must wait for the lease to expire).
        self.release_on_exit = True
        self.ready = asyncio.Event()

    @property
    def state(self) -> SchedulerState:
        return self.recovery.state

    @property
    def recovered_from_snapshot(self) -> int:
        """Log sequence of the snapshot the last rebuild started from (0: none)."""
        return self.recovery.snapshot_seq

    def now(self) -> float:
        """Wall time as this term sees it: its start plus the monotonic time since."""
        wall, mono = self._epoch
        return wall + (self._monotonic() - mono)

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Stand by and lead terms until stopped.

        While another master leads, this one keeps its state caught up with the log (a warm
        standby) and tries to take the lease. A term ends when the lease is lost or not surely
        held, when the log refuses an append (another writer got in), or on an unexpected
        error (fail-stop). NATS being away is never fatal: everything is retried.
        """
        await self._provision()
        try:
            while not self._stopping.is_set():
                raise_if_cancelled()  # one a NATS wait swallowed (see engine/_cancel.py)
                try:
                    await self._one_round()
                except EngineUnavailableError as exc:
                    log.warning("master %s: NATS unavailable, retrying: %s", self.holder, exc)
                    await self._pause(0.5)
                except Exception:
                    # Fail-stop: a bug may have left the state half-changed. Recover from
                    # the log rather than serve on with it.
                    log.exception("master %s: unexpected error; recovering", self.holder)
                    self.recovery.invalidate()
                    await self._pause(0.5)
        finally:
            self.ready.clear()
            if self.release_on_exit:
                await self.leadership.release()

    async def _provision(self) -> None:
        ttl = self.config.leader_lease_seconds
        while not self._stopping.is_set():
            raise_if_cancelled()
            try:
                await provision(self.engine, self.subjects, lease_ttl=ttl, replicas=self.replicas)
                await self.leadership.open()
                return
            except EngineUnavailableError as exc:
                log.warning("master %s: cannot provision yet: %s", self.holder, exc)
                await self._pause(1.0)

    async def _one_round(self) -> None:
        """Catch up; if the lease is free take it and lead one term, else wait a little."""
        if not self.leadership.held():
            await self.recovery.catch_up()
            if not await self.leadership.try_acquire():
                if not self._standby_logged:
                    log.info("master %s is standing by", self.holder)
                    self._standby_logged = True
                await self._pause(self.leadership.poll_interval)
                return
        self._standby_logged = False
        log.info("master %s is the leader", self.holder)
        keeper = asyncio.create_task(self.leadership.keep(self._lease_lost))
        try:
            self._term_over.clear()
            await self._start_term()
            if self.leadership.held() and not self._term_over.is_set():
                await self._serve()
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        if not self._stopping.is_set():
            log.warning("master %s: term ended", self.holder)
            if not self.recovery.clean and self.leadership.held():
                # Our state must be rebuilt, which may take long: let a warm standby lead.
                await self.leadership.release()

    async def _start_term(self) -> None:
        """Take the log's tail as the expected sequence and apply what we have not yet."""
        recovery = self.recovery
        while True:
            last = await recovery.log.open()
            applied = await recovery.catch_up(upto=last)
            if recovery.seq == last:
                break
            log.info("master %s: the log moved while catching up; again", self.holder)
        self.handlers.state = self.state
        self._outgoing = asyncio.Queue()
        for parked in self.parking.all():
            self.parking.take(parked.region, parked.instance)
        self._since_snapshot = 0
        self._fresh_log = last == 0
        self._epoch = (self._wall(), self._monotonic())
        log.info(
            "master %s: state at log sequence %d (snapshot at %d, %d events applied now)",
            self.holder,
            last,
            recovery.snapshot_seq,
            applied,
        )

    async def _pause(self, seconds: float) -> None:
        # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that
        # arrives as the awaited event is set (gh-86296), and SIGTERM is a cancellation.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    def stop(self) -> None:
        self._stopping.set()

    def end_term(self) -> None:
        """Stop serving (the log moved under us, or the lease is gone or unsure)."""
        self._term_over.set()

    def _lease_lost(self, reason: str) -> None:
        self.end_term()

    def _fail_stop(self, why: str) -> None:
        """The state may hold changes the log will not: end the term and rebuild it."""
        log.error("master %s: %s; the state is rebuilt from the log", self.holder, why)
        self._term_dirty = True
        self.recovery.invalidate()
        self.end_term()

    async def _serve(self) -> None:
        recovery = self.recovery
        self._committer = GroupCommitter(recovery.log, on_fail=self._committer_failed)
        sub: Subscription | None = None
        try:
            async with self._committer, asyncio.TaskGroup() as tg:
                loops = [
                    tg.create_task(self._reply_loop()),
                    tg.create_task(self._tick_loop()),
                ]
                # A plain subscription, not a queue group: a deposed master that does not know
                # it yet (paused, cut off) still receives requests, but so does the leader, and
                # only the leader answers. A queue group would hand it half of them to time out.
                sub = await self.engine.subscribe(self.subjects.master_all, cb=self._on_request)
                # Until the committer has made durable all that this term applies.
                recovery.invalidate()
                self._term_dirty = False
                await self._commit(
                    term_start_events(
                        self.state, self.config.initial_settings, self._fresh_log, self.now()
                    )
                )
                self._intake = IntakeApplier(
                    self.intake_stream,
                    self.state,
                    commit=self._commit_intake,
                    now=self.now,
                    fail=self._fail_stop,
                )
                await self._intake.start()
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
                    async with asyncio.timeout(2.0):
                        await self._outgoing.join()
                for loop in loops:
                    loop.cancel()
        finally:
            self.ready.clear()
            intake, self._intake = self._intake, None
            if intake is not None:
                with contextlib.suppress(TierqError):
                    await intake.stop()
            if sub is not None:
                with contextlib.suppress(TierqError):
                    await sub.unsubscribe()
            for task in list(self._tasks):
                task.cancel()
        stats = self._committer.statistics()
        if not self._term_dirty and stats.pending_items == 0 and not self._committer.failed:
            recovery.advanced(stats.last_seq)

    def _committer_failed(self, exc: TierqError) -> None:
        """The log refused an append (another writer moved it) or its outcome is unknown:
        this term can accept nothing more, whoever was waiting on it. Recover again."""
        self._fail_stop(f"the log refused an append ({exc})")

    # -- requests --------------------------------------------------------------------------

    async def _on_request(self, msg: Message, *, caught_up: bool | None = None) -> None:
        op = msg.subject.rsplit(".", 1)[-1]
        if not msg.reply:
            return
        if not self.leadership.held() or self._term_over.is_set():
            # Possibly deposed (paused, cut off): say nothing; the leader answers this one.
            self.end_term()
            return
        now = self.now()
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
            payload = encode_ok(handled.reply)
        except TierqError as exc:
            # Commands validate before they change anything, so the state is as it was.
            if self._intake is not None and may_be_unapplied(exc):
                if caught_up is None:
                    self._spawn(self._after_intake(msg))
                    return
                exc = exc if caught_up else intake_behind(exc)
            self._queue_reply([], msg.reply, encode_error(exc))
            return
        except Exception as exc:  # a bug: the state may be half-changed
            log.exception("handler %s failed", op)
            self._fail_stop(f"handler {op} raised {type(exc).__name__}")
            await self._respond(msg.reply, encode_error(TierqError(f"internal error in {op}")))
            return
        self._queue_reply(handled.events, msg.reply, payload)
        if handled.events:
            self._after_change(now)

    async def _after_intake(self, msg: Message) -> None:
        """Handle ``msg`` again once the intake as it is now is applied (read your writes).

        ``caught_up`` tells the second handling whether the intake was applied in time.
        """
        intake, applied = self._intake, False
        if intake is not None:
            with contextlib.suppress(TierqError):
                applied = await intake.caught_up()
        await self._on_request(msg, caught_up=applied)

    def _commit_intake(self, events: list[Event], now: float) -> None:
        self._queue_reply(events, "", b"")
        self._after_change(now)

    def _queue_reply(self, events: list[Event], reply_to: str, payload: bytes) -> None:
        """Queue a reply behind the append of ``events`` (or behind everything before it).

        A reply with no events still waits for every append submitted before it: a read or an
        idempotent repeat may show what those appends carry, and must not if they fail.
        """
        try:
            commit = self._commit(events)
        except TierqError as exc:
            if events:  # applied, and the log will never have them
                self._fail_stop(f"events could not be submitted to the log ({exc})")
            self._spawn(self._respond(reply_to, encode_error(exc)))
            return
        self._outgoing.put_nowait(_Outgoing(commit, events, reply_to, payload))

    def _commit(self, events: list[Event]) -> asyncio.Future[int]:
        if self._committer is None:
            raise EngineUnavailableError("this master is not serving")
        encode = self._encoder.encode
        self._since_snapshot += len(events)
        return self._committer.submit([encode(ev) for ev in events])

    def _after_change(self, now: float) -> None:
        """Work may have become ready: serve parked region leases, re-plan the tick."""
        if len(self.parking):
            for parked in self.parking.all():
                self._try_parked(parked, now)
        # Wake the tick loop only if the change made work due before it wakes anyway.
        wake = self.state.next_wakeup()
        if wake is not None and wake < self._tick_at:
            self._tick_at = 0.0
            self._tick_wakeup.set()

    def _lease(self, msg: Message, now: float) -> None:
        req = decode(msg.data, LeaseRequest)
        if isinstance(req.slots, bool) or not 0 <= req.slots <= MAX_LEASE_SLOTS:
            raise InvalidRequestError(
                f"slots must be between 0 and {MAX_LEASE_SLOTS}", field="slots"
            )
        if not math.isfinite(req.wait):
            raise InvalidRequestError("wait must be a finite number of seconds", field="wait")
        types = None if req.task_types is None else frozenset(req.task_types)
        self.parking.take(req.region, req.instance)
        events, tasks = self.state.lease(req.region, req.instance, req.slots, now, types)
        wait = min(req.wait, self.config.max_lease_wait)
        if tasks or wait <= 0 or req.slots == 0:
            self._queue_reply(events, msg.reply, encode_ok(LeaseReply(tasks=tasks)))
            return
        parked = ParkedLease(
            req.region, req.instance, req.slots, msg.reply, now + wait, types=types
        )
        loop = asyncio.get_running_loop()
        parked.handle = loop.call_later(wait, self._expire_parked, parked)
        self.parking.park(parked)

    def _try_parked(self, parked: ParkedLease, now: float) -> None:
        try:
            events, tasks = self.state.lease(
                parked.region, parked.instance, parked.slots, now, parked.types
            )
        except TierqError as exc:
            self.parking.take(parked.region, parked.instance)
            self._queue_reply([], parked.reply, encode_error(exc))
            return
        if tasks:
            self.parking.take(parked.region, parked.instance)
            self._queue_reply(events, parked.reply, encode_ok(LeaseReply(tasks=tasks)))

    def _expire_parked(self, parked: ParkedLease) -> None:
        if self.parking.parked.get((parked.region, parked.instance)) is parked:
            self.parking.take(parked.region, parked.instance)
            self._queue_reply([], parked.reply, encode_ok(LeaseReply(tasks=[])))

    def _wait(self, msg: Message, now: float) -> None:
        req = decode(msg.data, WaitRequest)
        if not req.ids:
            raise InvalidRequestError("wait needs at least one task id", field="ids")
        if not math.isfinite(req.timeout):
            raise InvalidRequestError("timeout must be a finite number", field="timeout")
        for task_id in req.ids:
            self.state.get(task_id)  # unknown ids fail now, not after the timeout
        self._spawn(self._wait_and_reply(req, msg.reply))

    async def _wait_and_reply(self, req: WaitRequest, reply_to: str) -> None:
        deadline = asyncio.get_running_loop().time() + max(0.0, min(req.timeout, 3600.0))
        await self.waiters.until_terminal(req.ids, self.handlers.terminal, deadline)
        now = self.now()
        found = (self.handlers.find(i, explain_at=now) for i in req.ids)
        tasks = [t for t in found if t is not None]
        self._queue_reply([], reply_to, encode_ok(TasksReply(tasks=tasks)))

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
        try:
            await out.commit
        except TierqError as exc:
            if isinstance(exc, FencedError):
                log.error("master %s was fenced: the log moved under it", self.holder)
                self.end_term()
            if out.reply_to:
                await self._respond(out.reply_to, encode_error(exc))
            return
        if out.events:
            await self.publisher.publish(out.events)
            await self.publisher.publish_admission(self.state, self.now())
        elif not self.leadership.held():
            # Nothing of ours is in it, and another master may lead by now: a read from this
            # state could be stale. Say nothing; the client asks again and the leader answers.
            self.end_term()
            return
        if out.reply_to:
            await self._respond(out.reply_to, out.payload)
        if self._outgoing.empty():
            self._maybe_snapshot()

    async def _tick_loop(self) -> None:
        """Run ``tick`` whenever the core says time-driven work is due."""
        while True:
            now = self.now()
            try:
                events = self.state.tick(now) + fire_due(self.state, now)
            except Exception as exc:  # a bug: the state may be half-changed
                log.exception("tick failed")
                self._fail_stop(f"tick raised {type(exc).__name__}")
                return
            if events:
                self._queue_reply(events, "", b"")
                self._after_change(now)
            wake = self.state.next_wakeup()
            at = self.now()
            delay = 1.0 if wake is None else min(1.0, max(0.0, wake - at))
            self._tick_at = at + delay
            self._tick_wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(delay, 0.001)):
                    await self._tick_wakeup.wait()

    def _maybe_snapshot(self) -> None:
        """Snapshot every ``snapshot_every`` events so recovery replays a bounded tail."""
        due = self._since_snapshot >= self.config.snapshot_every
        if not due or self._snapshot_running or self._committer is None:
            return
        self._since_snapshot = 0
        self._snapshot_running = True
        self._spawn(self._take_snapshot())

    async def _take_snapshot(self) -> None:
        """Encode the state and store it with the log sequence it covers.

        Encoding a large state holds the event loop for a while (about 1.4 s for 1,000,000
        queued tasks), and no renewal can go out meanwhile: renew first, so the whole lease is
        left for it. The state already includes every event handed to the committer, so an
        empty submission right after encoding resolves with exactly the sequence it covers.
        """
        try:
            await self.leadership.renew()
            committer = self._committer
            if committer is not None and self.leadership.held():
                await self.recovery.snapshot(committer, self.intake_stream)
        except TierqError as exc:
            log.warning("snapshot failed: %s", exc)
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
