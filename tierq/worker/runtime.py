"""The worker process: register with a region, pull for free slots, run, report, drain.

Shutdown order (:meth:`Worker.run`): stop pulling (the in-flight pull is let finish so no
handed-out task is dropped) → wait up to ``drain_grace`` for running attempts → give up the
rest (reported LOST, so the master re-queues them at once instead of after the lease) →
flush reports → stop heartbeats → close the pools.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from ..client import TaskContext
from ..config import WorkerConfig
from ..core.model import ErrorSummary, LeasedTask, Outcome, Progress, Started
from ..engine import Engine, Message, Subjects, Subscription, raise_if_cancelled
from ..errors import EngineUnavailableError, InvalidRequestError, NotFoundError, TierqError
from ..protocol import (
    Ack,
    PullReply,
    PullRequest,
    RegionHello,
    RegisterWorkerReply,
    RegisterWorkerRequest,
    WorkerHeartbeat,
    WorkerHeartbeatReply,
    WorkerReport,
    decode,
    decode_reply,
    encode,
    encode_ok,
)
from .attempts import Attempt, Why, wait_all_or
from .outcome import ReportedError, failed, lost, succeeded, summarize, timed_out
from .processes import ChildTaskError, ProcessPool
from .registry import TaskRegistry
from .reporter import Reporter
from .schedules import declare_schedules

__all__ = ["Worker", "WorkerStatistics"]

log = logging.getLogger("tierq.worker")

T = TypeVar("T")

#: What :meth:`Worker._pull` returns when the region process holding the pull was replaced.
_REPULL: Final = PullReply()

#: How long one pull is parked at the region when nothing is ready.
PULL_WAIT = 5.0
#: Signals closer together than this are one request to stop (see :meth:`Worker.on_signal`).
SIGNAL_DEBOUNCE = 1.0
#: At shutdown, reports get this long to be acknowledged before the worker gives up on them
#: (the region then loses the worker's lease and the master re-queues what was unreported).
FLUSH_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class WorkerStatistics:
    worker: str
    concurrency: int
    running: int
    busy_slots: int
    #: Threads still running a sync task whose attempt already ended (timed out, cancelled).
    stuck_threads: int
    completed: int
    failed: int
    draining: bool


@dataclass(slots=True)
class _Counters:
    completed: int = 0
    failed: int = 0
    reports: int = 0
    pulls: int = 0


class Worker:
    """One worker process's runtime (the CLI's ``tierq worker`` runs exactly one)."""

    def __init__(
        self,
        config: WorkerConfig,
        registry: TaskRegistry,
        engine: Engine,
        *,
        pull_wait: float = PULL_WAIT,
        trusted: bool = False,
    ) -> None:
        """``trusted``: use the region's trusted subjects (only the API's NATS user may: its
        ``shell`` runner); no probe subject then, the region may not write to the API's inbox."""
        self.config = config
        self.trusted = trusted
        self.registry = registry
        self.engine = engine
        self.id = config.worker_id or f"{socket.gethostname()}-{os.getpid()}-{os.urandom(2).hex()}"
        self.subjects = Subjects(config.nats.prefix)
        self._subject = self.subjects.region_trusted if trusted else self.subjects.region
        self.pull_wait = pull_wait
        self.heartbeat_interval = 1.0
        self.reporter = Reporter(self.id, self._send_report, max_payload=engine.max_payload)
        self._attempts: dict[tuple[str, int], Attempt] = {}
        #: Slots in use: running attempts plus threads still busy after a timeout or cancel.
        self._busy = 0
        self._slot_freed = asyncio.Event()
        self._draining = asyncio.Event()
        self._stop_now = asyncio.Event()
        self._heartbeat_now = asyncio.Event()
        #: Set when the background loops must end; they check it because a cancel alone can
        #: be lost (CPython 3.11's wait_for, used by nats-py's request, may swallow one).
        self._closing = False
        self._first_signal: float | None = None
        self._registered = asyncio.Event()
        #: The region process this worker registered with, and a flag set when another one
        #: took its place: the pull in flight went to a dead process and is abandoned.
        self._region_instance = ""
        self._probe_subject = ""
        self._region_changed = asyncio.Event()
        self._counters = _Counters()
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=config.concurrency, thread_name_prefix="tierq-task"
        )
        self._processes: ProcessPool | None = None
        if config.pool == "process":
            self._processes = ProcessPool(config.modules, config.concurrency)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    # -- control ---------------------------------------------------------------------------

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def drain(self) -> None:
        """Take nothing new; finish what runs (within ``drain_grace``); then :meth:`run` ends."""
        if not self._draining.is_set():
            log.info("worker %s draining: %d tasks running", self.id, len(self._attempts))
            self._draining.set()
            self._heartbeat_now.set()
            self._slot_freed.set()

    def stop_now(self) -> None:
        """Cancel running attempts (reported lost) and end :meth:`run` as soon as reported."""
        self.drain()
        self._stop_now.set()

    def on_signal(self) -> None:
        """First SIGTERM/SIGINT drains, a second one stops now.

        A second signal within :data:`SIGNAL_DEBOUNCE` of the first counts as the same
        request: Ctrl-C reaches every process of the terminal's group, and a supervisor
        (``tierq dev``) then sends its own SIGTERM a moment later.
        """
        now = time.monotonic()
        if self._first_signal is None:
            self._first_signal = now
            self.drain()
        elif now - self._first_signal >= SIGNAL_DEBOUNCE:
            log.warning("second signal: cancelling %d running tasks", len(self._attempts))
            self.stop_now()

    async def wait_registered(self) -> None:
        await self._registered.wait()

    def statistics(self) -> WorkerStatistics:
        return WorkerStatistics(
            worker=self.id,
            concurrency=self.config.concurrency,
            running=len(self._attempts),
            busy_slots=self._busy,
            stuck_threads=self._busy - len(self._attempts),
            completed=self._counters.completed,
            failed=self._counters.failed,
            draining=self.draining,
        )

    # -- main loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until drained (or cancelled)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        if self._processes is not None:
            await self._processes.start()
        # Answered while this process's connection lives; see RegisterWorkerRequest.probe.
        probe: Subscription | None = None
        if not self.trusted:
            self._probe_subject = self.engine.new_inbox()
            probe = await self.engine.subscribe(self._probe_subject, cb=self._on_probe)
        try:
            if not await self._register():
                return
            hello = await self._subscribe_hello()
            async with asyncio.TaskGroup() as tg:
                if self.registry.schedules and not self.trusted:
                    declaring = declare_schedules(self, self.registry.schedules, self._draining)
                    tg.create_task(declaring, name="tierq-worker-schedules")
                reporting = tg.create_task(self.reporter.run(), name="tierq-worker-report")
                beating = tg.create_task(self._heartbeat_loop(), name="tierq-worker-heartbeat")
                await self._pull_loop()
                await self._finish_running()
                if not await self.reporter.wait_flushed(FLUSH_TIMEOUT):
                    log.error(
                        "worker %s: %d outcomes unacknowledged at exit; they will be re-run",
                        self.id,
                        self.reporter.pending,
                    )
                self._closing = True
                self.reporter.close()
                self._heartbeat_now.set()
                reporting.cancel()
                beating.cancel()
            if hello is not None:
                with contextlib.suppress(TierqError):
                    await hello.unsubscribe()
        finally:
            if probe is not None:
                with contextlib.suppress(TierqError):
                    await probe.unsubscribe()
            await self._abandon_all()
            self._threads.shutdown(wait=False, cancel_futures=True)
            if self._processes is not None:
                await self._processes.close()
        log.info("worker %s stopped", self.id)

    async def _register(self) -> bool:
        """Register with the region, retrying until it answers; False if stopped first."""
        request = RegisterWorkerRequest(
            worker=self.id,
            task_types=self.registry.names,
            concurrency=self.config.concurrency,
            pool=self.config.pool,
            host=socket.gethostname(),
            pid=os.getpid(),
            probe=self._probe_subject,
            declared=self.registry.declared(),
        )
        delay = 0.05
        while not self._draining.is_set():
            self._region_changed.clear()
            try:
                reply = await self._call("register", request, RegisterWorkerReply, within=5.0)
            except EngineUnavailableError as exc:
                log.warning("region %r does not answer (%s); retrying", self.config.region, exc)
                await self._pause(delay)
                delay = min(delay * 2, 2.0)
                continue
            self.heartbeat_interval = max(0.05, reply.heartbeat_interval)
            self._region_instance = reply.region_instance
            if not self._registered.is_set():
                log.info(
                    "worker %s registered in region %s: %d task types, concurrency %d, pool %s",
                    self.id,
                    self.config.region,
                    len(request.task_types),
                    request.concurrency,
                    request.pool,
                )
            self._registered.set()
            return True
        return False

    async def _pull_loop(self) -> None:
        delay = 0.05
        while not self._draining.is_set():
            raise_if_cancelled()  # one a NATS wait swallowed (see engine/_cancel.py)
            free = self.config.concurrency - self._busy
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            request = PullRequest(worker=self.id, slots=free, wait=self.pull_wait)
            try:
                # Deliberately not cut short by drain(): the region may be handing us tasks
                # right now, and a reply nobody reads would strand them until our lease ends.
                reply = await self._pull(request)
            except NotFoundError:
                log.warning(
                    "region %r forgot worker %s; registering again", self.config.region, self.id
                )
                await self._register()
                continue
            except TierqError as exc:
                log.warning("pull failed (%s); retrying in %.2f s", exc, delay)
                await self._pause(delay)
                delay = min(delay * 2, 2.0)
                continue
            if reply is None:
                return
            if reply is _REPULL:
                await self._register()
                continue
            delay = 0.05
            self._counters.pulls += 1
            for leased in reply.tasks:
                self._start(leased)
            if reply.drain:
                self.drain()

    async def _pull(self, request: PullRequest) -> PullReply | None:
        """One long-poll pull; None: stop at once (second signal); _REPULL: region replaced."""
        self._region_changed.clear()
        call = asyncio.ensure_future(
            self._call("pull", request, PullReply, within=request.wait + 5.0)
        )
        stop = asyncio.ensure_future(self._stop_now.wait())
        changed = asyncio.ensure_future(self._region_changed.wait())
        abandoned = False
        try:
            await asyncio.wait((call, stop, changed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            changed.cancel()
            if self._region_changed.is_set() and not call.done() and not self._stop_now.is_set():
                # The process holding this pull is gone: no task can come back on it.
                abandoned = True
            if not call.done():
                # Stopping now, or this task itself is being cancelled: end the pull too, and
                # wait for it without swallowing our own cancellation.
                call.cancel()
                await asyncio.wait((call,))
        if abandoned:
            return _REPULL
        if call.cancelled():
            return None
        return call.result()

    # -- attempts --------------------------------------------------------------------------

    def _start(self, leased: LeasedTask) -> None:
        key = (leased.id, leased.attempt)
        if key in self._attempts:
            return  # the same delivery twice: it is already running here
        ctx = TaskContext(
            task_id=leased.id,
            attempt=leased.attempt,
            name=leased.name,
            worker=self.id,
            workflow_id=leased.workflow_id,
            parent_results=leased.parent_results,
            on_progress=self._progress_sink(leased.id, leased.attempt),
        )
        attempt = Attempt(leased, ctx)
        self._busy += 1
        self._attempts[key] = attempt
        self.reporter.started(Started(task_id=leased.id, attempt=leased.attempt, worker=self.id))
        attempt.task = asyncio.get_running_loop().create_task(
            self._run_attempt(attempt), name=f"tierq-task-{leased.id}-{leased.attempt}"
        )

    async def _run_attempt(self, attempt: Attempt) -> None:
        leased, ctx = attempt.leased, attempt.ctx
        outcome: Outcome | None = None
        limit = leased.timeout
        if limit is None and (known := self.registry.get(leased.name)) is not None:
            # Submitted before any worker declared it: the code's own timeout still holds.
            limit = known.defaults.timeout
        timer = asyncio.timeout(limit)
        try:
            async with timer:
                result = await self._execute(attempt)
            outcome = succeeded(leased.id, leased.attempt, self.id, result)
        except TimeoutError as exc:
            ctx.cancel()
            if timer.expired():
                outcome = timed_out(leased.id, leased.attempt, self.id, limit or 0.0)
            else:
                outcome = failed(leased.id, leased.attempt, self.id, summarize(exc))
        except ReportedError as exc:
            outcome = failed(leased.id, leased.attempt, self.id, exc.summary)
        except asyncio.CancelledError:
            ctx.cancel()
            if attempt.why is None:
                raise  # the worker itself is being torn down
            if attempt.why is Why.SHUTDOWN:
                outcome = lost(
                    leased.id,
                    leased.attempt,
                    self.id,
                    f"worker {self.id} shut down before the task finished",
                )
        except (Exception, SystemExit) as exc:
            outcome = failed(leased.id, leased.attempt, self.id, summarize(exc))
        finally:
            self._attempts.pop((leased.id, leased.attempt), None)
            if outcome is not None:
                if outcome.error is None:
                    self._counters.completed += 1
                else:
                    self._counters.failed += 1
                self.reporter.outcome(outcome)
            self._release_when_idle(attempt)

    async def _execute(self, attempt: Attempt) -> Any:
        leased, ctx = attempt.leased, attempt.ctx
        task = self.registry.get(leased.name)
        if task is None:
            raise ChildTaskError(
                ErrorSummary(
                    type="UnknownTaskError",
                    message=f"worker {self.id} has no task named {leased.name!r}",
                )
            )
        try:
            task.check_arguments(leased.args, leased.kwargs)
        except InvalidRequestError as exc:
            # Arguments that do not fit the function fail the same way on every retry.
            summary = ErrorSummary(type="TypeError", message=str(exc), permanent=True)
            raise ReportedError(summary) from None
        if task.is_async:
            return await task.invoke(leased.args, leased.kwargs, ctx)
        if self._processes is not None:
            return await self._processes.run(leased, ctx)
        attempt.thread = self._threads.submit(task.invoke, leased.args, leased.kwargs, ctx)
        return await asyncio.wrap_future(attempt.thread)

    def _release_when_idle(self, attempt: Attempt) -> None:
        """Free the slot now, or, for a thread that has not noticed its cancel flag yet, when
        it returns: the pool only has ``concurrency`` threads to give."""
        thread = attempt.thread
        if thread is None or thread.done():
            self._release()
            return
        loop = asyncio.get_running_loop()

        def release_later(_: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: so is the worker
                loop.call_soon_threadsafe(self._release)

        thread.add_done_callback(release_later)

    def _release(self) -> None:
        self._busy -= 1
        self._slot_freed.set()

    def _cancel(self, key: tuple[str, int], why: Why) -> None:
        attempt = self._attempts.get(key)
        if attempt is None or attempt.task is None or attempt.task.done():
            return
        attempt.why = why
        attempt.ctx.cancel()
        attempt.task.cancel()

    def _progress_sink(self, task_id: str, attempt: int) -> Any:
        """The attempt's progress callback: direct on the loop, coalesced from threads (a
        tight loop of ``ctx.progress`` calls costs one loop wake-up, not one each)."""
        lock = threading.Lock()
        latest: list[Progress | None] = [None]

        def deliver() -> None:
            with lock:
                item, latest[0] = latest[0], None
            if item is not None:
                self._progress(item)

        def emit(fraction: float, message: str | None) -> None:
            item = Progress(task_id=task_id, attempt=attempt, fraction=fraction, message=message)
            if threading.get_ident() == self._loop_thread:
                self._progress(item)
                return
            with lock:
                scheduled = latest[0] is not None
                latest[0] = item
            if not scheduled and self._loop is not None:
                with contextlib.suppress(RuntimeError):  # loop closed: nobody to tell
                    self._loop.call_soon_threadsafe(deliver)

        return emit

    def _progress(self, item: Progress) -> None:
        if (item.task_id, item.attempt) in self._attempts:
            self.reporter.progress(item)

    async def _finish_running(self) -> None:
        """Give running attempts ``drain_grace`` to end, then cancel what is left."""
        if self._attempts:
            tasks = {a.task for a in self._attempts.values() if a.task is not None}
            log.info(
                "waiting up to %.0f s for %d running tasks", self.config.drain_grace, len(tasks)
            )
            stop = asyncio.ensure_future(self._stop_now.wait())
            try:
                await wait_all_or(tasks, stop, self.config.drain_grace)
            finally:
                stop.cancel()
        if self._attempts:
            log.warning(
                "giving up %d unfinished tasks; they will run again elsewhere", len(self._attempts)
            )
            await self._cancel_all(Why.SHUTDOWN)

    async def _cancel_all(self, why: Why) -> None:
        tasks = [a.task for a in self._attempts.values() if a.task is not None]
        for key in list(self._attempts):
            self._cancel(key, why)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _abandon_all(self) -> None:
        """Tear-down path (cancelled or crashed): stop every attempt, reporting nothing."""
        tasks = [a.task for a in self._attempts.values() if a.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- heartbeats and requests -----------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.heartbeat_interval):
                    await self._heartbeat_now.wait()
            self._heartbeat_now.clear()
            if self._closing:
                return
            # Attempts whose outcome the region has not acknowledged are still ours to it.
            held = [*self._attempts, *self.reporter.unacknowledged()]
            beat = WorkerHeartbeat(worker=self.id, running=held, draining=self.draining)
            try:
                reply = await self._call(
                    "heartbeat",
                    beat,
                    WorkerHeartbeatReply,
                    within=max(2.0, self.heartbeat_interval * 2),
                )
            except TierqError as exc:
                log.warning("heartbeat failed: %s", exc)
                continue
            for task_id, attempt in reply.cancel:
                self._cancel((task_id, attempt), Why.REGION)
            if reply.unknown:
                log.warning(
                    "region %r does not know worker %s; registering again",
                    self.config.region,
                    self.id,
                )
                await self._register()
                self._region_changed.set()
            elif reply.region_instance != self._region_instance:
                self._region_changed.set()
            if reply.drain:
                self.drain()

    async def _pause(self, seconds: float) -> None:
        """Wait before a retry; a drain or a new region process cuts it short."""
        waits = {asyncio.ensure_future(e.wait()) for e in (self._draining, self._region_changed)}
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _on_probe(self, msg: Message) -> None:
        await msg.respond(encode_ok(Ack()))

    async def _subscribe_hello(self) -> Subscription | None:  # None: not permitted
        try:
            return await self.engine.subscribe(
                self.subjects.region(self.config.region, "hello"), cb=self._on_hello
            )
        except TierqError as exc:  # a restart is then noticed by the next heartbeat
            log.warning("worker %s cannot hear region restarts: %s", self.id, exc)
        return None

    async def _on_hello(self, msg: Message) -> None:
        """A region process started: if it is not ours, re-register and re-pull now."""
        try:
            hello = decode(msg.data, RegionHello)
        except TierqError:
            return
        if hello.instance != self._region_instance:
            log.info("region %r restarted; registering again", self.config.region)
            self._region_changed.set()

    async def _send_report(self, report: WorkerReport) -> None:
        await self._call("report", report, Ack, within=10.0)
        self._counters.reports += 1

    async def _call(self, op: str, request: object, reply_type: type[T], within: float) -> T:
        data = await self.engine.request(
            self._subject(self.config.region, op), encode(request), timeout=within
        )
        return decode_reply(data, reply_type)
