"""The app: where tasks are declared and submitted, and its connections."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, ParamSpec, TypeVar, overload

import msgspec

from ..config import NatsConfig
from ..core import ScheduleSpec, WorkflowSummary, WorkflowView
from ..core.model import (
    TERMINAL_STATES,
    FailurePolicy,
    RetryPolicy,
    Task,
    TaskSpec,
    TaskState,
    WorkflowSpec,
)
from ..core.schedule_records import check_schedule_id
from ..engine import Engine, Subjects, connect
from ..errors import EngineUnavailableError, InvalidRequestError, WaitTimeoutError
from ..protocol import QueryKind, QueryRequest
from ..rpc import MasterClient
from ._handles import TaskHandle, TaskPage, WorkflowHandle, warn_unserved
from ._intake import IntakeSubmitter
from ._pipeline import PendingTask, Pipeline
from ._schedules import SCHEDULE_OPTIONS, Schedules, schedule_spec
from ._sync import SyncApp
from ._task import TaskDef, build_spec
from ._validate import (
    SUBMIT_OPTIONS,
    check_name,
    check_priority,
    overrides,
    positive_seconds,
    retry_policy,
    to_seconds,
)
from ._workflow import Workflow

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_NATS = "nats://127.0.0.1:4222"

#: Longest single ``wait`` request; a longer wait is several of these in a row.
_WAIT_CHUNK = 30.0


class _Connection(NamedTuple):
    engine: Engine
    master: MasterClient
    intake: IntakeSubmitter


class _LoopSlot:
    __slots__ = ("conn", "lock", "pipeline")

    def __init__(self) -> None:
        self.conn: _Connection | None = None
        self.lock = asyncio.Lock()
        self.pipeline: Pipeline | None = None


class App:
    """Where tasks are declared and submitted.

    Args:
        nats: server URL(s) (``"nats://h1:4222,nats://h2:4222"`` or a list), or a full
            :class:`~tierq.config.NatsConfig`. Default: ``$TIERQ_NATS``, else
            ``nats://127.0.0.1:4222``.
        prefix: subject prefix of the installation (default ``$TIERQ_PREFIX`` or ``tierq``).
        request_timeout: seconds to wait for the master to answer one request.
        intake: whether :meth:`submit` publishes to the durable intake (the default: one
            JetStream publish, durable when it returns, applied by the master moments later).
            ``False`` sends each submission to the master as a request instead, which
            costs two more hops. A task with an ``idempotency_key`` or ``depends_on`` always
            goes to the master, which checks them before it answers.
    """

    def __init__(
        self,
        nats: str | Sequence[str] | NatsConfig | None = None,
        *,
        prefix: str | None = None,
        request_timeout: float = 10.0,
        intake: bool = True,
    ) -> None:
        if isinstance(nats, NatsConfig):
            config = nats
            if prefix is not None:
                config = NatsConfig(**{**struct_dict(config), "prefix": prefix})
        else:
            servers = nats if nats is None or isinstance(nats, str) else ",".join(nats)
            config = NatsConfig.from_env(servers=servers, prefix=prefix)
        if not config.servers:
            config = NatsConfig(**{**struct_dict(config), "servers": (DEFAULT_NATS,)})
        self.config = config
        self.request_timeout = positive_seconds(request_timeout, "request_timeout")
        self.intake = bool(intake)
        #: Every task declared on this app, by name.
        self.tasks: dict[str, TaskDef[Any, Any]] = {}
        # One connection per event loop: a NATS client is bound to the loop it was made on,
        # and an app may be used from pytest's per-test loops or from SyncApp's thread.
        self._connections: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopSlot] = (
            weakref.WeakKeyDictionary()
        )
        self._sync: SyncApp | None = None
        #: Schedules declared in code, by id: registered by each worker that loads the app.
        self.declared_schedules: dict[str, ScheduleSpec] = {}
        #: Run-time management of the master's schedules.
        self.schedules = Schedules(self.master)

    # -- declaring tasks -------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, R], /) -> TaskDef[P, R]: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        priority: int | None = None,
        retries: int | RetryPolicy | None = None,
        timeout: float | None = None,
        region: str | None = None,
        labels: Iterable[str] | str | None = None,
        queue: str | None = None,
        resource: str | None = None,
        retry_on: Iterable[type[BaseException] | str] | None = None,
        backoff: float | tuple[float, float] | None = None,
        schedule: str | None = None,
    ) -> Callable[[Callable[P, R]], TaskDef[P, R]]: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        priority: int | None = None,
        retries: int | RetryPolicy | None = None,
        timeout: float | None = None,
        region: str | None = None,
        labels: Iterable[str] | str | None = None,
        queue: str | None = None,
        resource: str | None = None,
        retry_on: Iterable[type[BaseException] | str] | None = None,
        backoff: float | tuple[float, float] | None = None,
        schedule: str | None = None,
    ) -> Any:
        """Declare a task: ``@app.task`` or ``@app.task(retries=3, timeout=60, ...)``.

        ``retries`` counts retries after the first attempt (or is a full
        :class:`~tierq.core.model.RetryPolicy`); ``backoff`` is the first retry delay in
        seconds, or ``(first, max)``; ``retry_on`` limits retries to those exception
        classes. The name defaults to ``module.qualname``. ``schedule`` (a cron
        expression, UTC) declares a schedule of the task without arguments, under the task's
        name (see :meth:`schedule` for more options).
        """

        def decorate(f: Callable[..., Any]) -> TaskDef[Any, Any]:
            if not callable(f):
                raise TypeError(f"@app.task needs a function, got {f!r}")
            task_name = check_name(name or f"{f.__module__}.{f.__qualname__}")
            if task_name in self.tasks and self.tasks[task_name].fn is not f:
                raise InvalidRequestError(
                    f"task name {task_name!r} is already used by {self.tasks[task_name].fn!r}",
                    field="name",
                )
            defaults = TaskSpec(name=task_name)
            options: dict[str, Any] = {
                "timeout": timeout,
                "region": region,
                "labels": labels,
                "queue": queue,
                "resource": resource,
            }
            changes = overrides(options, defaults)
            if priority is not None:
                changes["priority"] = check_priority(priority)
            changes["retry"] = retry_policy(retries, backoff, retry_on)
            task = TaskDef(self, f, task_name, msgspec.structs.replace(defaults, **changes))
            self.tasks[task_name] = task
            if schedule is not None:
                self.schedule(task_name, task, cron=schedule)
            return task

        return decorate(fn) if fn is not None else decorate

    def schedule(
        self,
        schedule_id: str,
        target: TaskDef[Any, Any] | str | Workflow | WorkflowSpec,
        *args: Any,
        **kwargs: Any,
    ) -> ScheduleSpec:
        """Declare a schedule in code: ``app.schedule("nightly", report, "eu",
        cron="30 2 * * *", timezone="Europe/Berlin", overlap="skip")``.

        Keyword arguments are schedule options (``cron``, ``every``, ``offset``,
        ``timezone``, ``jitter``, ``start_at``, ``end_at``, ``overlap``, ``catchup_window``,
        ``catchup``, ``fire_time_arg``) or the task's keyword arguments. Each worker that
        loads the app registers its declared schedules when it starts: a new one is made, a
        stored one is left as it is and a difference is logged as a warning.
        """
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in SCHEDULE_OPTIONS}
        check_schedule_id(schedule_id)
        spec = schedule_spec(target, args, kwargs, **options)
        self.declared_schedules[schedule_id] = spec
        return spec

    # -- submitting ------------------------------------------------------------------------

    async def submit(self, task: TaskDef[Any, Any] | str, *args: Any, **kwargs: Any) -> TaskHandle:
        """Submit a task by :class:`TaskDef` or by name (a task this process may not have)."""
        if isinstance(task, str) and task in self.tasks:
            task = self.tasks[task]
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in SUBMIT_OPTIONS}
        spec = build_spec(task, args, kwargs, options)
        if not self.intake or spec.idempotency_key is not None or spec.depends_on:
            # What only the master can check at once (a known key, the parents) goes to it.
            return (await self.submit_many([spec]))[0]
        task_id, warnings = await (await self._connection()).intake.submit(spec)
        warn_unserved(warnings)
        return TaskHandle(self, task_id, spec.name, warnings)

    def submit_nowait(
        self, task: TaskDef[Any, Any] | str, *args: Any, **kwargs: Any
    ) -> PendingTask:
        """Hand a task over without waiting; it is sent in the next batch (pipelined).

        Call it on a running event loop. The task is durable only once
        ``await pending.accepted()``, ``await app.flush()`` or the end of ``async with app:``
        returns; a refused batch fails its pending tasks and is raised by the next
        ``submit_nowait`` or ``flush``. Arguments are checked here, as by :meth:`submit`.
        """
        if isinstance(task, str) and task in self.tasks:
            task = self.tasks[task]
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in SUBMIT_OPTIONS}
        return self._pipeline().add(build_spec(task, args, kwargs, options))

    async def flush(self) -> None:
        """Wait until every task handed to :meth:`submit_nowait` on this loop is accepted or
        refused; raise the first refusal not raised yet."""
        slot = self._connections.get(asyncio.get_running_loop())
        if slot is not None and slot.pipeline is not None:
            await slot.pipeline.flush()

    def _pipeline(self) -> Pipeline:
        loop = asyncio.get_running_loop()
        slot = self._connections.get(loop)
        if slot is None:
            slot = self._connections[loop] = _LoopSlot()
        if slot.pipeline is None:
            slot.pipeline = Pipeline(self, self.master)
        return slot.pipeline

    async def submit_many(self, specs: Iterable[TaskSpec]) -> list[TaskHandle]:
        """Submit many tasks in one request (build them with :meth:`TaskDef.spec`).

        Admission is all or nothing: on :class:`~tierq.BackpressureError` none was accepted.
        """
        batch = list(specs)
        for i, spec in enumerate(batch):
            if not isinstance(spec, TaskSpec):
                raise InvalidRequestError(
                    f"submit_many takes TaskSpecs (task.spec(...)), got {type(spec).__name__}",
                    field=f"tasks[{i}]",
                )
        if not batch:
            return []
        reply = await (await self.master()).submit_reply(batch)
        warn_unserved(reply.warnings)
        # A warning names its task type: each handle carries those about its own.
        return [
            TaskHandle(self, i, s.name, [w for w in reply.warnings if repr(s.name) in w])
            for i, s in zip(reply.ids, batch, strict=True)
        ]

    def workflow(
        self,
        name: str = "workflow",
        *,
        on_failure: FailurePolicy | str = FailurePolicy.SKIP_DEPENDENTS,
        idempotency_key: str | None = None,
    ) -> Workflow:
        return Workflow(self, name, on_failure=on_failure, idempotency_key=idempotency_key)

    def handle(self, task_id: str) -> TaskHandle:
        """A handle on a task submitted elsewhere."""
        return TaskHandle(self, task_id)

    # -- reading ---------------------------------------------------------------------------

    async def get(self, task_id: str) -> Task:
        return await (await self.master()).get(task_id)

    async def get_many(self, task_ids: Sequence[str]) -> list[Task]:
        """Several tasks as they are now, in one request."""
        if not task_ids:
            return []
        return await (await self.master()).wait(list(task_ids), 0.0)

    async def wait_tasks(
        self,
        task_ids: Sequence[str],
        timeout: float | None = None,
    ) -> list[Task]:
        """Wait until every task is terminal; raise :class:`WaitTimeoutError` after ``timeout``."""
        master = await self.master()
        deadline = None if timeout is None else time.monotonic() + to_seconds(timeout, "timeout")
        ids = list(task_ids)
        while True:
            left = _WAIT_CHUNK if deadline is None else deadline - time.monotonic()
            tasks = await master.wait(ids, max(0.0, min(_WAIT_CHUNK, left)))
            pending = [t for t in tasks if t.state not in TERMINAL_STATES]
            if not pending:
                return tasks
            if deadline is not None and time.monotonic() >= deadline:
                shown = ", ".join(_pending(t) for t in pending[:5])
                raise WaitTimeoutError(
                    f"waited {timeout:g} s; not finished: {shown}"
                    + (f" and {len(pending) - 5} more" if len(pending) > 5 else "")
                )

    async def list_tasks(
        self,
        *,
        state: TaskState | str | None = None,
        name: str | None = None,
        queue: str | None = None,
        workflow_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        newest_first: bool = False,
    ) -> TaskPage:
        """One page of tasks, oldest first (``newest_first``: newest first); pass the page's
        ``next_cursor`` as ``cursor`` for the next one."""
        state_value = None
        if state is not None:
            try:
                state_value = TaskState(state).value
            except ValueError:
                choices = ", ".join(s.value for s in TaskState)
                raise InvalidRequestError(
                    f"state must be one of {choices}, got {state!r}", field="state"
                ) from None
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidRequestError("limit must be between 1 and 10000", field="limit")
        query = QueryRequest(
            kind=QueryKind.TASKS,
            state=state_value,
            name=name,
            queue=queue,
            workflow_id=workflow_id,
            limit=limit,
            cursor=cursor,
            newest_first=bool(newest_first),
        )
        reply = await (await self.master()).list_tasks(query)
        return TaskPage(reply.tasks, reply.next_cursor)

    async def list_workflows(
        self, *, state: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[WorkflowSummary], str | None]:
        """Workflows newest first and the cursor of the next page (None at the end);
        ``state``: running, succeeded, failed or cancelled."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidRequestError("limit must be between 1 and 1000", field="limit")
        reply = await (await self.master()).list_workflows(state=state, limit=limit, cursor=cursor)
        return reply.workflows, reply.next_cursor

    async def get_workflow(self, workflow_id: str) -> WorkflowView:
        """A workflow's graph as the master sees it: all nodes with states, edges, counts
        (fetched a page at a time for a large workflow, and joined)."""
        return await (await self.master()).workflow_all(workflow_id)

    async def workflow_handle(self, workflow_id: str) -> WorkflowHandle:
        """A handle on a workflow submitted elsewhere (sinks computed from its edges)."""
        view = await self.get_workflow(workflow_id)
        has_children = {parent for parent, _ in view.edges}
        return WorkflowHandle(
            self,
            view.id,
            {n.key: n.task_id for n in view.nodes},
            sinks=[n.key for n in view.nodes if n.task_id not in has_children],
            name=view.name,
        )

    # -- connection ------------------------------------------------------------------------

    @property
    def subjects(self) -> Subjects:
        return Subjects(self.config.prefix)

    async def master(self) -> MasterClient:
        """The client for the master on the running loop (connecting on first use)."""
        return (await self._connection()).master

    async def _connection(self) -> _Connection:
        loop = asyncio.get_running_loop()
        slot = self._connections.get(loop)
        if slot is None:
            slot = self._connections[loop] = _LoopSlot()
        conn = slot.conn
        if conn is not None and not conn.engine.is_closed:
            return conn
        async with slot.lock:
            if slot.conn is None or slot.conn.engine.is_closed:
                nats = self.config.for_role("client")
                try:
                    engine = await connect(nats.connect_options(name="tierq-client"))
                except EngineUnavailableError as exc:
                    raise EngineUnavailableError(f"{exc.message}; {NATS_HINT}") from exc
                client = MasterClient(engine, self.subjects, self.request_timeout)
                intake = IntakeSubmitter(engine, self.subjects, client, self.request_timeout)
                slot.conn = _Connection(engine, client, intake)
            return slot.conn

    async def close(self) -> None:
        """Send what :meth:`submit_nowait` holds, then close this loop's connection (another
        loop's connection is closed from there). A refused submission is raised after."""
        loop = asyncio.get_running_loop()
        slot = self._connections.get(loop)
        try:
            if slot is not None and slot.pipeline is not None:
                await slot.pipeline.flush()
        finally:
            slot = self._connections.pop(loop, None)
            if slot is not None:
                if slot.pipeline is not None:
                    slot.pipeline.close()
                if slot.conn is not None:
                    await slot.conn.engine.close()

    async def __aenter__(self) -> App:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def sync(self) -> SyncApp:
        """A blocking facade over this app for code without an event loop."""
        if self._sync is None:
            self._sync = SyncApp(self)
        return self._sync

    def __repr__(self) -> str:
        return f"App(nats={','.join(self.config.servers)!r}, prefix={self.config.prefix!r})"


def struct_dict(config: NatsConfig) -> dict[str, Any]:
    return msgspec.structs.asdict(config)


#: What to do when no NATS answers (the SDK and the CLI say the same).
NATS_HINT = (
    "start a local server with `tierq dev`, or point at yours with "
    "App(nats=URL), $TIERQ_NATS or --nats URL"
)


def _pending(task: Task) -> str:
    """A task that did not finish in time, with what holds it when the master said."""
    held = f": {task.reason}" if task.state is TaskState.READY and task.reason else ""
    return f"{task.id} ({task.state.value}{held})"
