"""The Python SDK: declare tasks, submit them alone or as workflows, wait for results.

::

    app = tierq.App("nats://127.0.0.1:4222")

    @app.task(retries=2, timeout=30)
    async def add(x: int, y: int) -> int:
        return x + y

    handle = await add.submit(1, 2, priority=5)
    assert await handle.result(timeout=10) == 3

The connection is opened on first use, once per event loop, and reused; close it with
``await app.close()`` or ``async with app:``. Code without an event loop uses :attr:`App.sync`
(a :class:`SyncApp`). Workers find tasks by importing the modules that define them and
collecting every :class:`App` they hold, so the ``App`` a module creates needs no connection
settings that match the worker's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import functools
import inspect
import math
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, NamedTuple, ParamSpec, TypeVar, overload

import msgspec

from .config import NatsConfig
from .core import WorkflowView
from .core.model import (
    PRIORITY_MAX,
    PRIORITY_MIN,
    TERMINAL_STATES,
    FailurePolicy,
    RetryPolicy,
    Task,
    TaskSpec,
    TaskState,
    WorkflowNode,
    WorkflowSpec,
)
from .engine import Engine, Subjects, connect
from .errors import (
    InvalidRequestError,
    TaskCancelledError,
    TaskFailedError,
    TaskTimeoutError,
    WaitTimeoutError,
)
from .protocol import QueryKind, QueryRequest, WorkflowReply
from .rpc import MasterClient
from .worker.context import TaskContext
from .worker.outcome import error_type_name
from .worker.values import NotJSONError, check_json

__all__ = [
    "App",
    "NodeRef",
    "SyncApp",
    "SyncTaskHandle",
    "SyncWorkflowHandle",
    "TaskDef",
    "TaskHandle",
    "TaskPage",
    "Workflow",
    "WorkflowHandle",
]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_NATS = "nats://127.0.0.1:4222"

#: Longest single ``wait`` request; a longer wait is several of these in a row.
_WAIT_CHUNK = 30.0

#: Keyword arguments of ``submit``/``spec``/``Workflow.add`` that are options, not task kwargs.
SUBMIT_OPTIONS = frozenset(
    {"priority", "run_at", "delay", "deadline", "depends_on", "idempotency_key"}
)
#: What ``submit_with`` and ``options`` accept on top (per-call overrides of decorator defaults).
OVERRIDE_OPTIONS = frozenset({"timeout", "region", "labels", "queue", "resource", "retries"})

TimeLike = float | int | dt.datetime
DelayLike = float | int | dt.timedelta


# --- tasks --------------------------------------------------------------------------------


class TaskDef(Generic[P, R]):
    """A function registered as a task. Calling it runs it here; ``submit`` runs it remotely.

    Made by :meth:`App.task`; ``name`` is how workers and other clients refer to it.
    """

    def __init__(self, app: App, fn: Callable[P, R], name: str, defaults: TaskSpec) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        #: The spec every submission starts from (args empty).
        self.defaults = defaults
        self.is_async = inspect.iscoroutinefunction(fn)
        self._signature, self._ctx_param, self._ctx_index = _context_parameter(fn)
        functools.update_wrapper(self, fn)

    @property
    def wants_context(self) -> bool:
        return self._ctx_param is not None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function in this process; a context parameter left out gets a local one."""
        p, i = self._ctx_param, self._ctx_index
        given = p is not None and (
            p.name in kwargs
            or (
                p.kind is not inspect.Parameter.KEYWORD_ONLY
                and len(args) > i
                and isinstance(args[i], TaskContext)
            )
        )
        if p is None or given:
            return self.fn(*args, **kwargs)
        return self.invoke(args, kwargs, TaskContext.local(self.name))  # type: ignore[no-any-return]

    def invoke(self, args: Sequence[Any], kwargs: Mapping[str, Any], ctx: TaskContext) -> Any:
        """Call the function with submitted ``args``/``kwargs``, filling its context parameter."""
        p = self._ctx_param
        if p is None:
            return self.fn(*args, **kwargs)
        i = self._ctx_index
        if p.kind is not inspect.Parameter.KEYWORD_ONLY and len(args) >= i:
            return self.fn(*args[:i], ctx, *args[i:], **kwargs)  # type: ignore[arg-type]
        return self.fn(*args, **kwargs, **{p.name: ctx})  # type: ignore[arg-type]

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise :class:`InvalidRequestError` if the arguments do not fit the signature."""
        if self._signature is None:
            return
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidRequestError(
                f"arguments do not match task {self.name!r}{self._signature}: {exc}", field="args"
            ) from None

    def spec(self, *args: Any, **kwargs: Any) -> TaskSpec:
        """The :class:`TaskSpec` that ``submit`` with the same arguments would send."""
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in SUBMIT_OPTIONS}
        return build_spec(self, args, kwargs, options)

    async def submit(self, *args: Any, **kwargs: Any) -> TaskHandle:
        """Run the task remotely. Options: ``priority``, ``run_at``, ``delay``, ``deadline``,
        ``depends_on``, ``idempotency_key``; every other keyword goes to the function.

        A task whose own parameters use those names takes its arguments via
        :meth:`submit_with`.
        """
        return (await self.app.submit_many([self.spec(*args, **kwargs)]))[0]

    async def submit_with(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> TaskHandle:
        """Like :meth:`submit` with the arguments spelled out; also accepts ``timeout``,
        ``region``, ``labels``, ``queue``, ``resource`` and ``retries`` overrides."""
        spec = build_spec(self, tuple(args), dict(kwargs or {}), options)
        return (await self.app.submit_many([spec]))[0]

    def __repr__(self) -> str:
        return f"<TaskDef {self.name}>"


def _context_parameter(
    fn: Callable[..., Any],
) -> tuple[inspect.Signature | None, inspect.Parameter | None, int]:
    """The signature without the context parameter, that parameter, and its position."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None, None, 0
    params = list(sig.parameters.values())
    for index, p in enumerate(params):
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if p.name == "ctx" or _is_context_annotation(p.annotation):
            rest = params[:index] + params[index + 1 :]
            return sig.replace(parameters=rest), p, index
    return sig, None, 0


def _is_context_annotation(annotation: Any) -> bool:
    if isinstance(annotation, str):
        # ``from __future__ import annotations`` leaves the annotation as text.
        text = annotation.replace(" ", "").strip("'\"").split("|")[0]
        return text.rsplit(".", 1)[-1] == "TaskContext"
    return isinstance(annotation, type) and issubclass(annotation, TaskContext)


def build_spec(
    task: TaskDef[Any, Any] | str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    options: Mapping[str, Any],
    *,
    allowed: frozenset[str] = SUBMIT_OPTIONS | OVERRIDE_OPTIONS,
) -> TaskSpec:
    """Validate one submission and build its :class:`TaskSpec`; errors name the field."""
    unknown = set(options) - allowed
    if unknown:
        raise InvalidRequestError(
            f"unknown submit option(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0]
        )
    if isinstance(task, TaskDef):
        base = task.defaults
        task.check_arguments(args, kwargs)
    else:
        base = TaskSpec(name=_check_name(task))
    for i, value in enumerate(args):
        _check_value(value, f"args[{i}]")
    for key, value in kwargs.items():
        _check_value(value, f"kwargs.{key}")
    changes: dict[str, Any] = {"args": list(args), "kwargs": dict(kwargs)}
    if "priority" in options:
        changes["priority"] = check_priority(options["priority"])
    run_at = _when(options.get("run_at"), "run_at")
    if options.get("delay") is not None:
        if run_at is not None:
            raise InvalidRequestError("give run_at or delay, not both", field="delay")
        run_at = time.time() + _seconds(options["delay"], "delay")
    if run_at is not None:
        changes["run_at"] = run_at
    deadline = _when(options.get("deadline"), "deadline")
    if deadline is not None:
        changes["deadline"] = deadline
    if options.get("depends_on"):
        changes["depends_on"] = _task_ids(options["depends_on"])
    idem = options.get("idempotency_key")
    if idem is not None:
        if not isinstance(idem, str) or not 1 <= len(idem) <= 256:
            raise InvalidRequestError(
                "idempotency_key must be a string of 1-256 characters", field="idempotency_key"
            )
        changes["idempotency_key"] = idem
    changes.update(_overrides(options, base))
    return msgspec.structs.replace(base, **changes)


def _overrides(options: Mapping[str, Any], base: TaskSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if options.get("timeout") is not None:
        out["timeout"] = _positive(options["timeout"], "timeout")
    if options.get("region") is not None:
        out["region"] = _token(options["region"], "region")
    if options.get("labels") is not None:
        out["labels"] = _labels(options["labels"])
    if options.get("queue") is not None:
        out["queue"] = _token(options["queue"], "queue")
    if options.get("resource") is not None:
        out["resource"] = _resource(options["resource"])
    if options.get("retries") is not None:
        out["retry"] = retry_policy(options["retries"], None, None, base.retry)
    return out


def _check_value(value: Any, path: str) -> None:
    try:
        check_json(value, path)
    except NotJSONError as exc:
        raise InvalidRequestError(
            f"{exc}; task arguments must be JSON values (None, bool, int, float, str, list, "
            "dict with str keys)",
            field=exc.path,
        ) from None


def check_priority(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"priority must be an integer, got {value!r}", field="priority")
    if not PRIORITY_MIN <= value <= PRIORITY_MAX:
        raise InvalidRequestError(
            f"priority must be between {PRIORITY_MIN} and {PRIORITY_MAX}, got {value}",
            field="priority",
        )
    return value


def _when(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise InvalidRequestError(
                f"{field} must be a timezone-aware datetime (or seconds since the epoch)",
                field=field,
            )
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequestError(
            f"{field} must be a datetime or seconds since the epoch, got {value!r}", field=field
        )
    return float(value)


def _seconds(value: Any, field: str) -> float:
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequestError(
            f"{field} must be a number of seconds, got {value!r}", field=field
        )
    if value < 0:
        raise InvalidRequestError(f"{field} must not be negative, got {value}", field=field)
    return float(value)


def _positive(value: Any, field: str) -> float:
    seconds = _seconds(value, field)
    if seconds <= 0:
        raise InvalidRequestError(f"{field} must be positive, got {value}", field=field)
    return seconds


def _token(value: Any, field: str) -> str:
    from .config import check_token

    if not isinstance(value, str):
        raise InvalidRequestError(f"{field} must be a string, got {value!r}", field=field)
    return check_token(value, field)


def _labels(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    return tuple(_token(v, "labels") for v in value)


def _resource(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 200:
        raise InvalidRequestError("resource must be a string of 1-200 characters", field="resource")
    return value


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 200 or name.strip() != name:
        raise InvalidRequestError(
            f"task name must be 1-200 characters without surrounding spaces, got {name!r}",
            field="name",
        )
    return name


def _task_ids(value: Any) -> tuple[str, ...]:
    if isinstance(value, str | TaskHandle):
        value = (value,)
    ids: list[str] = []
    for item in value:
        if isinstance(item, TaskHandle):
            ids.append(item.id)
        elif isinstance(item, str) and item:
            ids.append(item)
        else:
            raise InvalidRequestError(
                f"depends_on takes task ids or TaskHandles, got {item!r}", field="depends_on"
            )
    return tuple(ids)


def retry_policy(
    retries: int | RetryPolicy | None,
    backoff: float | tuple[float, float] | None,
    retry_on: Iterable[type[BaseException] | str] | None,
    base: RetryPolicy | None = None,
) -> RetryPolicy:
    """Build a :class:`RetryPolicy` from the decorator's shorthand.

    ``retries`` is how many times a failed attempt is retried (``max_attempts - 1``), or a
    full policy; ``backoff`` the base delay in seconds or ``(base, max)``; ``retry_on`` the
    exception classes (or type names) that retry — anything else fails at once.
    """
    policy = base or RetryPolicy()
    if isinstance(retries, RetryPolicy):
        policy = retries
    elif retries is not None:
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
            raise InvalidRequestError(
                f"retries must be an integer from 0 to 100, got {retries!r}", field="retries"
            )
        policy = msgspec.structs.replace(policy, max_attempts=retries + 1)
    if backoff is not None:
        if isinstance(backoff, tuple):
            low, high = (_positive(b, "backoff") for b in backoff)
            policy = msgspec.structs.replace(policy, backoff_base=low, backoff_max=high)
        else:
            policy = msgspec.structs.replace(policy, backoff_base=_positive(backoff, "backoff"))
    if retry_on is not None:
        names: list[str] = []
        for item in retry_on:
            if isinstance(item, type) and issubclass(item, BaseException):
                names.append(error_type_name(item))
            elif isinstance(item, str) and item:
                names.append(item)
            else:
                raise InvalidRequestError(
                    f"retry_on takes exception classes or type names, got {item!r}",
                    field="retry_on",
                )
        policy = msgspec.structs.replace(policy, retry_on=tuple(names))
    return policy


# --- handles ------------------------------------------------------------------------------


def task_result(task: Task) -> Any:
    """The result of a terminal task, or the matching exception."""
    if task.state is TaskState.SUCCEEDED:
        return task.result
    if task.state is TaskState.CANCELLED:
        raise TaskCancelledError(
            f"task {task.id} ({task.spec.name}) was cancelled", task_id=task.id
        )
    if task.state is TaskState.SKIPPED:
        raise TaskCancelledError(
            f"task {task.id} ({task.spec.name}) was skipped because an upstream task failed",
            task_id=task.id,
        )
    error = task.error
    if error is not None and error.timeout:
        raise TaskTimeoutError(
            f"task {task.id} ({task.spec.name}): {error.message}", task_id=task.id
        )
    if task.state is TaskState.DEAD:
        raise TaskFailedError(
            error.message if error else "the task failed",
            task_id=task.id,
            error_type=error.type if error else "Exception",
            traceback=error.traceback if error else None,
        )
    raise WaitTimeoutError(f"task {task.id} is still {task.state.value}")


class TaskHandle:
    """A submitted task: ask for its result, status, cancel it or change its priority."""

    __slots__ = ("app", "id", "name")

    def __init__(self, app: App, task_id: str, name: str | None = None) -> None:
        self.app = app
        self.id = task_id
        self.name = name

    async def result(self, timeout: float | None = None) -> Any:
        """Wait until the task ends and return its result.

        Raises:
            TaskFailedError: it ran out of attempts (remote ``error_type`` and ``traceback``).
            TaskTimeoutError: its last attempt ran past its execution timeout.
            TaskCancelledError: it was cancelled, or skipped because a parent failed.
            WaitTimeoutError: ``timeout`` seconds passed first (the task goes on).
        """
        (task,) = await self.app.wait_tasks([self.id], timeout)
        return task_result(task)

    async def status(self) -> Task:
        """The task's record now: state, attempt, progress, result or error, history."""
        return await self.app.get(self.id)

    async def cancel(self) -> None:
        await (await self.app.master()).cancel(self.id)

    async def set_priority(self, priority: int) -> None:
        await (await self.app.master()).reprioritize(self.id, check_priority(priority))

    def __repr__(self) -> str:
        return f"TaskHandle(id={self.id!r}, name={self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskHandle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


class TaskPage(NamedTuple):
    tasks: list[Task]
    #: Pass to the next ``list_tasks`` call for the following page; None at the end.
    next_cursor: str | None


# --- workflows ----------------------------------------------------------------------------


class NodeRef:
    """A node of a :class:`Workflow`; pass it as an argument to feed the node's result on."""

    __slots__ = ("_workflow", "key", "name")

    def __init__(self, workflow: Workflow, key: str, name: str) -> None:
        self._workflow = workflow
        self.key = key
        self.name = name

    def __repr__(self) -> str:
        return f"NodeRef({self.key!r})"


class Workflow:
    """Builds a DAG of tasks that is submitted in one request.

    ::

        wf = app.workflow("etl")
        raw = wf.add(extract, "s3://bucket/day.csv")
        rows = wf.add(transform, raw)              # transform(<extract's result>)
        wf.add(load, rows, table="daily")
        run = await wf.submit()
        print(await run.result())                  # {"load": ...}: results of the sinks

    A :class:`NodeRef` given as a positional or keyword argument becomes an edge, and the
    worker receives the parent's result in its place. ``depends_on=[ref, ...]`` adds edges
    that pass nothing.
    """

    def __init__(
        self,
        app: App,
        name: str = "workflow",
        *,
        on_failure: FailurePolicy | str = FailurePolicy.SKIP_DEPENDENTS,
        idempotency_key: str | None = None,
    ) -> None:
        self.app = app
        self.name = _check_name(name)
        try:
            self.on_failure = FailurePolicy(on_failure)
        except ValueError:
            choices = ", ".join(p.value for p in FailurePolicy)
            raise InvalidRequestError(
                f"on_failure must be one of {choices}, got {on_failure!r}", field="on_failure"
            ) from None
        self.idempotency_key = idempotency_key
        self._nodes: dict[str, WorkflowNode] = {}
        self._edges: list[tuple[str, str]] = []

    @property
    def keys(self) -> list[str]:
        return list(self._nodes)

    def add(
        self,
        task: TaskDef[Any, Any] | str,
        *args: Any,
        key: str | None = None,
        **kwargs: Any,
    ) -> NodeRef:
        """Add one task; returns its ref. Options as for :meth:`TaskDef.submit`, where
        ``depends_on`` takes refs of this workflow."""
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in SUBMIT_OPTIONS}
        return self.add_with(task, args, kwargs, key=key, **options)

    def add_with(
        self,
        task: TaskDef[Any, Any] | str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        **options: Any,
    ) -> NodeRef:
        """Like :meth:`add` with the arguments spelled out (and per-node overrides)."""
        name = task.name if isinstance(task, TaskDef) else _check_name(task)
        key = self._new_key(name) if key is None else self._check_key(key)
        parents: list[str] = []
        wire_args = [self._resolve(v, f"args[{i}]", parents) for i, v in enumerate(args)]
        wire_kwargs = {
            k: self._resolve(v, f"kwargs.{k}", parents) for k, v in (kwargs or {}).items()
        }
        after = options.pop("depends_on", None) or ()
        for ref in (after,) if isinstance(after, NodeRef) else after:
            parents.append(self._own(ref, "depends_on").key)
        if "idempotency_key" in options:
            raise InvalidRequestError(
                "idempotency_key belongs to the workflow (app.workflow(..., idempotency_key=))",
                field="idempotency_key",
            )
        spec = build_spec(task, wire_args, wire_kwargs, options)
        self._nodes[key] = WorkflowNode(key=key, spec=spec)
        for parent in dict.fromkeys(parents):
            self._edges.append((parent, key))
        return NodeRef(self, key, name)

    def spec(self) -> WorkflowSpec:
        """The :class:`WorkflowSpec` :meth:`submit` sends."""
        if not self._nodes:
            raise InvalidRequestError(f"workflow {self.name!r} has no tasks", field="nodes")
        return WorkflowSpec(
            nodes=list(self._nodes.values()),
            edges=list(self._edges),
            name=self.name,
            on_failure=self.on_failure,
            idempotency_key=self.idempotency_key,
        )

    async def submit(self) -> WorkflowHandle:
        spec = self.spec()
        reply = await (await self.app.master()).submit_workflow(spec)
        return WorkflowHandle(
            self.app, reply.workflow_id, reply.ids, sinks=_sinks(spec), name=self.name
        )

    def _resolve(self, value: Any, path: str, parents: list[str]) -> Any:
        if isinstance(value, NodeRef):
            parents.append(self._own(value, path).key)
            return {"$result": value.key}
        if _contains_ref(value):
            raise InvalidRequestError(
                f"{path}: a workflow result can only be passed as a whole argument, "
                "not inside a list or dict",
                field=path,
            )
        return value

    def _own(self, ref: Any, path: str) -> NodeRef:
        if not isinstance(ref, NodeRef):
            raise InvalidRequestError(
                f"{path} takes refs returned by this workflow's add(), got {ref!r}", field=path
            )
        if ref._workflow is not self:
            raise InvalidRequestError(f"{path}: {ref!r} belongs to another workflow", field=path)
        return ref

    def _new_key(self, name: str) -> str:
        stem = name.rsplit(".", 1)[-1] or "task"
        key, n = stem, 1
        while key in self._nodes:
            n += 1
            key = f"{stem}-{n}"
        return key

    def _check_key(self, key: Any) -> str:
        if not isinstance(key, str) or not 1 <= len(key) <= 128:
            raise InvalidRequestError("a node key must be 1-128 characters", field="key")
        if key in self._nodes:
            raise InvalidRequestError(f"node key {key!r} is used twice", field="key")
        return key


def _contains_ref(value: Any) -> bool:
    if isinstance(value, NodeRef):
        return True
    if isinstance(value, list | tuple):
        return any(_contains_ref(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_ref(v) for v in value.values())
    return False


def _sinks(spec: WorkflowSpec) -> list[str]:
    parents = {parent for parent, _ in spec.edges}
    return [node.key for node in spec.nodes if node.key not in parents]


class WorkflowHandle:
    """A submitted workflow: its task ids by node key, results, status, cancellation."""

    def __init__(
        self,
        app: App,
        workflow_id: str,
        ids: Mapping[str, str],
        *,
        sinks: Sequence[str] | None = None,
        name: str | None = None,
    ) -> None:
        self.app = app
        self.id = workflow_id
        self.name = name
        #: Task id of every node, by node key.
        self.ids = dict(ids)
        #: Keys of the nodes nothing depends on: what :meth:`result` returns by default.
        self.sinks = list(sinks) if sinks is not None else list(self.ids)

    def task(self, node: NodeRef | str) -> TaskHandle:
        key = node.key if isinstance(node, NodeRef) else node
        if key not in self.ids:
            raise KeyError(f"workflow {self.id} has no node {key!r}")
        return TaskHandle(self.app, self.ids[key])

    def __getitem__(self, node: NodeRef | str) -> TaskHandle:
        return self.task(node)

    async def result(
        self,
        timeout: float | None = None,
        *,
        all: bool = False,
    ) -> dict[str, Any]:
        """Wait for every task, then return results by node key (the sinks', or ``all``).

        Raises the error of the first task that failed (in submission order) if any did, so a
        skipped sink reports the root cause rather than "skipped".
        """
        keys = list(self.ids)
        tasks = await self.app.wait_tasks([self.ids[k] for k in keys], timeout)
        by_key = dict(zip(keys, tasks, strict=True))
        for state in (TaskState.DEAD, TaskState.CANCELLED, TaskState.SKIPPED):
            for task in tasks:
                if task.state is state:
                    task_result(task)
        wanted = keys if all else self.sinks
        return {k: task_result(by_key[k]) for k in wanted}

    async def status(self) -> dict[str, Task]:
        """Every task of the workflow, by node key."""
        tasks = await self.app.get_many(list(self.ids.values()))
        by_id = {t.id: t for t in tasks}
        return {k: by_id[i] for k, i in self.ids.items() if i in by_id}

    async def cancel(self) -> None:
        """Cancel every unfinished task of the workflow."""
        await (await self.app.master()).cancel_workflow(self.id)

    def __repr__(self) -> str:
        return f"WorkflowHandle(id={self.id!r}, name={self.name!r}, tasks={len(self.ids)})"


# --- the app ------------------------------------------------------------------------------


class _Connection(NamedTuple):
    engine: Engine
    master: MasterClient


class _LoopSlot:
    __slots__ = ("conn", "lock")

    def __init__(self) -> None:
        self.conn: _Connection | None = None
        self.lock = asyncio.Lock()


class App:
    """Where tasks are declared and submitted.

    Args:
        nats: server URL(s) (``"nats://h1:4222,nats://h2:4222"`` or a list), or a full
            :class:`~tierq.config.NatsConfig`. Default: ``$TIERQ_NATS``, else
            ``nats://127.0.0.1:4222``.
        prefix: subject prefix of the installation (default ``$TIERQ_PREFIX`` or ``tierq``).
        request_timeout: seconds to wait for the master to answer one request.
    """

    def __init__(
        self,
        nats: str | Sequence[str] | NatsConfig | None = None,
        *,
        prefix: str | None = None,
        request_timeout: float = 10.0,
    ) -> None:
        if isinstance(nats, NatsConfig):
            config = nats
            if prefix is not None:
                config = NatsConfig(**{**_struct_dict(config), "prefix": prefix})
        else:
            servers = nats if nats is None or isinstance(nats, str) else ",".join(nats)
            config = NatsConfig.from_env(servers=servers, prefix=prefix)
        if not config.servers:
            config = NatsConfig(**{**_struct_dict(config), "servers": (DEFAULT_NATS,)})
        self.config = config
        self.request_timeout = _positive(request_timeout, "request_timeout")
        #: Every task declared on this app, by name.
        self.tasks: dict[str, TaskDef[Any, Any]] = {}
        # One connection per event loop: a NATS client is bound to the loop it was made on,
        # and an app may be used from pytest's per-test loops or from SyncApp's thread.
        self._connections: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopSlot] = (
            weakref.WeakKeyDictionary()
        )
        self._sync: SyncApp | None = None

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
    ) -> Any:
        """Declare a task: ``@app.task`` or ``@app.task(retries=3, timeout=60, ...)``.

        ``retries`` counts retries after the first attempt (or is a full
        :class:`~tierq.core.model.RetryPolicy`); ``backoff`` is the first retry delay in
        seconds, or ``(first, max)``; ``retry_on`` limits retries to those exception
        classes. The name defaults to ``module.qualname``.
        """

        def decorate(f: Callable[..., Any]) -> TaskDef[Any, Any]:
            if not callable(f):
                raise TypeError(f"@app.task needs a function, got {f!r}")
            task_name = _check_name(name or f"{f.__module__}.{f.__qualname__}")
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
            changes = _overrides(options, defaults)
            if priority is not None:
                changes["priority"] = check_priority(priority)
            changes["retry"] = retry_policy(retries, backoff, retry_on)
            task = TaskDef(self, f, task_name, msgspec.structs.replace(defaults, **changes))
            self.tasks[task_name] = task
            return task

        return decorate(fn) if fn is not None else decorate

    # -- submitting ------------------------------------------------------------------------

    async def submit(self, task: TaskDef[Any, Any] | str, *args: Any, **kwargs: Any) -> TaskHandle:
        """Submit a task by :class:`TaskDef` or by name (a task this process may not have)."""
        if isinstance(task, str) and task in self.tasks:
            task = self.tasks[task]
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in SUBMIT_OPTIONS}
        spec = build_spec(task, args, kwargs, options)
        return (await self.submit_many([spec]))[0]

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
        ids = await (await self.master()).submit(batch)
        return [TaskHandle(self, i, s.name) for i, s in zip(ids, batch, strict=True)]

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
        deadline = None if timeout is None else time.monotonic() + _seconds(timeout, "timeout")
        ids = list(task_ids)
        while True:
            left = _WAIT_CHUNK if deadline is None else deadline - time.monotonic()
            tasks = await master.wait(ids, max(0.0, min(_WAIT_CHUNK, left)))
            pending = [t for t in tasks if t.state not in TERMINAL_STATES]
            if not pending:
                return tasks
            if deadline is not None and time.monotonic() >= deadline:
                shown = ", ".join(f"{t.id} ({t.state.value})" for t in pending[:5])
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
    ) -> TaskPage:
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
        )
        reply = await (await self.master()).list_tasks(query)
        return TaskPage(reply.tasks, reply.next_cursor)

    async def get_workflow(self, workflow_id: str) -> WorkflowView:
        """A workflow's graph as the master sees it: nodes with states, edges, counts."""
        reply = await (await self.master()).query(
            QueryRequest(kind=QueryKind.WORKFLOW, id=workflow_id), WorkflowReply
        )
        return reply.workflow

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
                engine = await connect(self.config.connect_options(name="tierq-client"))
                client = MasterClient(engine, self.subjects, self.request_timeout)
                slot.conn = _Connection(engine, client)
            return slot.conn

    async def close(self) -> None:
        """Close this loop's connection (another loop's connection is closed from there)."""
        slot = self._connections.pop(asyncio.get_running_loop(), None)
        if slot is not None and slot.conn is not None:
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


def _struct_dict(config: NatsConfig) -> dict[str, Any]:
    return msgspec.structs.asdict(config)


# --- the blocking facade ------------------------------------------------------------------

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
