"""The blocking facade: the SDK for code without an event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from ..core.model import Task, TaskSpec
from ..errors import WaitTimeoutError

if TYPE_CHECKING:
    from ._app import App
    from ._handles import TaskHandle, TaskPage, WorkflowHandle
    from ._pipeline import PendingTask
    from ._task import TaskDef
    from ._workflow import NodeRef, Workflow


T = TypeVar("T")


class SyncApp:
    """Blocking calls on an :class:`App`, for code without an event loop (scripts, Flask…).

    ::

        handle = app.sync.submit(add, 1, 2)
        print(handle.result(timeout=10))

    Every call runs on a private event loop in a daemon thread, started on first use and
    shared by all threads of the process (calls are thread-safe). :meth:`close` stops it.
    Do not call it from a coroutine: it would block that loop until the call returns.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(self, aw: Awaitable[T], timeout: float | None = None) -> T:
        """Run a coroutine of this app on the private loop and return its result."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("SyncApp.run called from its own loop; await the call instead")
        future = asyncio.run_coroutine_threadsafe(_as_coroutine(aw), self._ensure_loop())
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise WaitTimeoutError(f"call did not finish within {timeout:g} s") from None

    def submit(self, task: TaskDef[Any, Any] | str, *args: Any, **kwargs: Any) -> SyncTaskHandle:
        return SyncTaskHandle(self, self.run(self.app.submit(task, *args, **kwargs)))

    def submit_nowait(
        self, task: TaskDef[Any, Any] | str, *args: Any, **kwargs: Any
    ) -> SyncPendingTask:
        """Hand a task over without waiting for the master (see :meth:`App.submit_nowait`);
        :meth:`flush` or leaving ``with app.sync:`` makes everything handed over durable."""
        pending = self.run(_call(self.app.submit_nowait, task, *args, **kwargs))
        return SyncPendingTask(self, pending)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything handed to :meth:`submit_nowait` is accepted or refused."""
        self.run(self.app.flush(), timeout)

    def submit_many(self, specs: Iterable[TaskSpec]) -> list[SyncTaskHandle]:
        handles = self.run(self.app.submit_many(list(specs)))
        return [SyncTaskHandle(self, h) for h in handles]

    def submit_workflow(self, workflow: Workflow) -> SyncWorkflowHandle:
        return SyncWorkflowHandle(self, self.run(workflow.submit()))

    def handle(self, task_id: str) -> SyncTaskHandle:
        return SyncTaskHandle(self, self.app.handle(task_id))

    def get(self, task_id: str) -> Task:
        return self.run(self.app.get(task_id))

    def list_tasks(self, **filters: Any) -> TaskPage:
        return self.run(self.app.list_tasks(**filters))

    def close(self) -> None:
        """Close the connection and stop the loop thread (a later call starts them again)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.app.close(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()

    def __enter__(self) -> SyncApp:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="tierq-sync", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop


async def _as_coroutine(aw: Awaitable[T]) -> T:
    return await aw


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a sync function on the private loop (it needs a running loop)."""
    return fn(*args, **kwargs)


class SyncPendingTask:
    """Blocking view of a :class:`~tierq.PendingTask`."""

    __slots__ = ("_pending", "_sync")

    def __init__(self, sync: SyncApp, pending: PendingTask) -> None:
        self._sync = sync
        self._pending = pending

    def done(self) -> bool:
        return self._pending.done()

    @property
    def id(self) -> str:
        return self._pending.id

    def accepted(self, timeout: float | None = None) -> SyncTaskHandle:
        """Wait until the task is durable; raises why it was refused."""
        return SyncTaskHandle(self._sync, self._sync.run(self._pending.accepted(), timeout))

    def __repr__(self) -> str:
        return repr(self._pending)


class SyncTaskHandle:
    """:class:`TaskHandle` with blocking methods (from :class:`SyncApp`)."""

    __slots__ = ("_handle", "_sync")

    def __init__(self, sync: SyncApp, handle: TaskHandle) -> None:
        self._sync = sync
        self._handle = handle

    @property
    def id(self) -> str:
        return self._handle.id

    @property
    def name(self) -> str | None:
        return self._handle.name

    def result(self, timeout: float | None = None) -> Any:
        return self._sync.run(self._handle.result(timeout))

    def status(self) -> Task:
        return self._sync.run(self._handle.status())

    def cancel(self) -> None:
        self._sync.run(self._handle.cancel())

    def set_priority(self, priority: int) -> None:
        self._sync.run(self._handle.set_priority(priority))

    def __repr__(self) -> str:
        return f"SyncTaskHandle(id={self.id!r}, name={self.name!r})"


class SyncWorkflowHandle:
    """:class:`WorkflowHandle` with blocking methods (from :class:`SyncApp`)."""

    __slots__ = ("_handle", "_sync")

    def __init__(self, sync: SyncApp, handle: WorkflowHandle) -> None:
        self._sync = sync
        self._handle = handle

    @property
    def id(self) -> str:
        return self._handle.id

    @property
    def ids(self) -> dict[str, str]:
        return self._handle.ids

    def task(self, node: NodeRef | str) -> SyncTaskHandle:
        return SyncTaskHandle(self._sync, self._handle.task(node))

    def result(self, timeout: float | None = None, *, all: bool = False) -> dict[str, Any]:
        return self._sync.run(self._handle.result(timeout, all=all))

    def status(self) -> dict[str, Task]:
        return self._sync.run(self._handle.status())

    def cancel(self) -> None:
        self._sync.run(self._handle.cancel())
