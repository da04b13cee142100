"""Pipelined submission: hand tasks over without waiting, made durable in batches.

``App.submit_nowait`` returns a :class:`PendingTask` at once. The pipeline of the running loop
sends what has accumulated as one ``submit`` request whenever the previous one has returned
(one request in flight: the group commit of the Kafka producer and of JetStream's async
publish), so a producer that does not wait pays one round trip per batch instead of per task.

Durability is never claimed early: a pending task is *accepted* only once the master has
acknowledged the batch that carries it, which is when its append is durable in the log.
``await pending.accepted()`` waits for that one task, ``await app.flush()`` for everything
handed over so far, and ``async with app:`` flushes on exit. A failure is never silent: it is
set on every pending task of the failed batch, and raised by the next ``submit_nowait`` or
``flush`` of that app on that loop.

Each task gets an idempotency key when it has none, so a batch whose outcome is unknown (a
timeout, a failover) is sent again as it was and the master returns the tasks it already has.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from ..core.model import TaskSpec
from ..errors import BackpressureError, EngineUnavailableError, TierqError

if TYPE_CHECKING:
    from ..rpc import MasterClient
    from ._app import App
    from ._handles import TaskHandle

__all__ = ["PendingTask", "Pipeline", "PipelineStatistics"]

#: Tasks per submit request (the master takes up to this many at once).
MAX_BATCH = 1000
#: Tasks handed over and not yet accepted, beyond which ``submit_nowait`` refuses more.
MAX_PENDING = 100_000
#: How long a batch whose outcome is unknown is sent again before its tasks fail.
RESEND_FOR = 60.0


@dataclass(frozen=True, slots=True)
class PipelineStatistics:
    """A snapshot of a :class:`Pipeline`'s counters."""

    batches: int  #: submit requests that returned (accepted or refused)
    accepted: int  #: tasks the master acknowledged
    refused: int  #: tasks whose batch failed
    pending: int  #: tasks handed over and not yet accepted or refused


class PendingTask:
    """A task handed to the pipeline; accepted (durable) once its batch is acknowledged."""

    __slots__ = ("_app", "_future", "name")

    def __init__(self, app: App, name: str, future: asyncio.Future[str]) -> None:
        self._app = app
        self.name = name
        self._future = future

    def done(self) -> bool:
        """Whether the task was accepted or refused (no waiting)."""
        return self._future.done()

    @property
    def id(self) -> str:
        """The task id once accepted.

        Raises:
            RuntimeError: not accepted yet (``await accepted()`` first).
            TierqError: the submission failed.
        """
        if not self._future.done():
            raise RuntimeError("the task is not accepted yet: await accepted() first")
        return self._future.result()

    async def accepted(self) -> TaskHandle:
        """Wait until the task is durable and return its handle; raises why it was refused."""
        from ._handles import TaskHandle

        task_id = await asyncio.shield(self._future)
        return TaskHandle(self._app, task_id, self.name)

    def __repr__(self) -> str:
        state = "pending" if not self._future.done() else "done"
        return f"<PendingTask {self.name} {state}>"


class Pipeline:
    """One loop's pipeline of an app: batches ``submit_nowait`` calls, one request in flight.

    Owns one sender task, started on demand and ended when nothing is left to send.
    """

    def __init__(
        self,
        app: App,
        master: Callable[[], Awaitable[MasterClient]],
        *,
        max_batch: int = MAX_BATCH,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._app = app
        self._master = master
        self.max_batch = max_batch
        self.max_pending = max_pending
        self._queue: collections.deque[tuple[TaskSpec, asyncio.Future[str]]] = collections.deque()
        self._in_flight = 0
        self._sender: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        #: The first failure not yet raised by ``add`` or ``flush``.
        self._error: TierqError | None = None
        self._batches = self._accepted = self._refused = 0

    def statistics(self) -> PipelineStatistics:
        return PipelineStatistics(
            batches=self._batches,
            accepted=self._accepted,
            refused=self._refused,
            pending=len(self),
        )

    def __len__(self) -> int:
        """Tasks handed over and not yet accepted or refused."""
        return len(self._queue) + self._in_flight

    def add(self, spec: TaskSpec) -> PendingTask:
        """Queue one task for the next batch; never waits.

        Raises:
            TierqError: an earlier batch of this pipeline failed (raised once).
            BackpressureError: ``max_pending`` tasks are already waiting to be sent.
        """
        self._raise_failure()
        if len(self) >= self.max_pending:
            raise BackpressureError(
                f"{len(self)} tasks are waiting to be sent; flush() before handing over more",
                retry_after=0.1,
            )
        if spec.idempotency_key is None:
            # Makes a batch safe to send again when its outcome is unknown.
            spec = msgspec.structs.replace(spec, idempotency_key=f"pipe-{uuid.uuid4().hex}")
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._queue.append((spec, future))
        self._idle.clear()
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_all())
        return PendingTask(self._app, spec.name, future)

    async def flush(self) -> None:
        """Wait until every task handed over so far is accepted or refused; raise a failure
        not yet raised."""
        await self._idle.wait()
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    async def _send_all(self) -> None:
        try:
            while self._queue:
                n = min(self.max_batch, len(self._queue))
                batch = [self._queue.popleft() for _ in range(n)]
                self._in_flight = n
                try:
                    ids = await self._send([spec for spec, _ in batch])
                except TierqError as exc:
                    self._refused += n
                    self._fail(batch, exc)
                else:
                    self._accepted += n
                    for (_, future), task_id in zip(batch, ids, strict=True):
                        if not future.done():
                            future.set_result(task_id)
                finally:
                    self._batches += 1
                    self._in_flight = 0
        except asyncio.CancelledError:
            cancelled = EngineUnavailableError("the pipeline was closed before sending")
            self._fail(list(self._queue), cancelled)
            self._queue.clear()
            raise
        finally:
            if not self._queue:
                self._idle.set()

    async def _send(self, specs: list[TaskSpec]) -> list[str]:
        """One batch, sent again while its outcome is unknown (the keys make that safe)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RESEND_FOR
        delay = 0.05
        while True:
            try:
                master = await self._master()
                return await master.submit(specs)
            except EngineUnavailableError:
                if loop.time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _fail(self, batch: list[tuple[TaskSpec, asyncio.Future[str]]], exc: TierqError) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)
                # The failure is raised by add()/flush(); a pending task nobody awaits must
                # not also be reported as "exception never retrieved".
                future.exception()
        if self._error is None:
            self._error = exc

    def close(self) -> None:
        """Stop sending; whatever was not sent fails with EngineUnavailableError."""
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()
