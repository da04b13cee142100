"""Handles on submitted work: results, status, cancellation, priority."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from ..core.model import Task, TaskState
from ..errors import TaskCancelledError, TaskFailedError, TaskTimeoutError, WaitTimeoutError
from ._validate import check_priority

if TYPE_CHECKING:
    from ._app import App
    from ._workflow import NodeRef


log = logging.getLogger("tierq.client")


def warn_unserved(warnings: Iterable[str]) -> None:
    """Log what the master said about a submission (e.g. no live worker runs a type)."""
    for warning in warnings:
        log.warning("%s", warning)


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
            error.message if error else (task.reason or "the task failed"),
            task_id=task.id,
            error_type=error.type if error else _refused_or(task.reason),
            traceback=error.traceback if error else None,
        )
    raise WaitTimeoutError(f"task {task.id} is still {task.state.value}")


class TaskHandle:
    """A submitted task: ask for its result, status, cancel it or change its priority."""

    __slots__ = ("app", "id", "name", "warnings")

    def __init__(
        self,
        app: App,
        task_id: str,
        name: str | None = None,
        warnings: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.id = task_id
        self.name = name
        #: What the master said about it at submission, e.g. that no live worker runs its
        #: type (it was accepted all the same and waits for one).
        self.warnings = tuple(warnings)

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
        warnings: Sequence[str] = (),
    ) -> None:
        self.app = app
        #: As :attr:`TaskHandle.warnings`, for the workflow's tasks.
        self.warnings = tuple(warnings)
        self.id = workflow_id
        self.name = name
        #: Task id of every node, by node key.
        self.ids = dict(ids)
        #: Keys of the nodes nothing depends on: what :meth:`result` returns by default.
        self.sinks = list(sinks) if sinks is not None else list(self.ids)

    def task(self, node: NodeRef | str) -> TaskHandle:
        key = node if isinstance(node, str) else node.key
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


def _refused_or(reason: str | None) -> str:
    """The error type of a DEAD task without an attempt's error: a durable-intake entry the
    master refused ("refused: …"), or a plain failure."""
    return "Refused" if reason is not None and reason.startswith("refused: ") else "Exception"
