"""The handle a running task gets on itself: ids, attempt, progress and cancellation."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import TaskCancelledError

__all__ = ["ProgressCallback", "TaskContext"]

#: Receives ``(fraction, message)``; must be safe to call from any thread.
ProgressCallback = Callable[[float, "str | None"], None]


def _ignore_progress(fraction: float, message: str | None) -> None:
    """Progress of a task called locally goes nowhere."""


class TaskContext:
    """What a task knows about the attempt it is running in.

    A task function receives one only if it asks: give it a parameter named ``ctx`` or
    annotated ``TaskContext`` (any position). The worker fills that parameter; the caller
    never passes it, and it is not part of the submitted arguments::

        @app.task(timeout=60)
        def resize(path: str, ctx: tierq.TaskContext) -> str:
            for i, chunk in enumerate(chunks(path)):
                if ctx.cancelled:
                    return "stopped"
                ctx.progress(i / n, f"chunk {i}")
            ...

    ``progress`` never blocks and may be called from any thread (or a process-pool child);
    only the latest value per report batch travels. ``cancelled`` turns true when the
    attempt is cancelled or times out: async tasks are cancelled outright, sync tasks in
    threads or processes must look at the flag (or call :meth:`raise_if_cancelled`).
    """

    __slots__ = (
        "_cancelled",
        "_emit",
        "attempt",
        "name",
        "parent_results",
        "task_id",
        "worker",
        "workflow_id",
    )

    def __init__(
        self,
        *,
        task_id: str,
        attempt: int,
        name: str,
        worker: str = "",
        workflow_id: str | None = None,
        parent_results: Mapping[str, Any] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.task_id = task_id
        #: 1 for the first run, 2 for the first retry (or re-run after a lost worker), ...
        self.attempt = attempt
        self.name = name
        self.worker = worker
        self.workflow_id = workflow_id
        #: Results of the parents in a workflow, keyed by parent task id.
        self.parent_results: Mapping[str, Any] = dict(parent_results or {})
        self._emit = on_progress or _ignore_progress
        self._cancelled = False

    @classmethod
    def local(cls, name: str = "local") -> TaskContext:
        """A context for calling a task function directly, outside any worker."""
        return cls(task_id="local", attempt=1, name=name)

    @property
    def cancelled(self) -> bool:
        """True once the attempt is cancelled or past its timeout: stop as soon as you can."""
        return self._cancelled

    def cancel(self) -> None:
        """Set :attr:`cancelled` (the worker does this; task code has no reason to)."""
        self._cancelled = True

    def raise_if_cancelled(self) -> None:
        """Raise :class:`~tierq.TaskCancelledError` if the attempt was cancelled."""
        if self._cancelled:
            raise TaskCancelledError(
                f"task {self.task_id} attempt {self.attempt} was cancelled", task_id=self.task_id
            )

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report how far the attempt got, 0.0 to 1.0 (clamped), with an optional message."""
        fraction = float(fraction)
        if not math.isfinite(fraction):
            raise ValueError(f"progress fraction must be a finite number, got {fraction!r}")
        if message is not None and not isinstance(message, str):
            raise TypeError(f"progress message must be a str, got {type(message).__name__}")
        self._emit(min(1.0, max(0.0, fraction)), message)

    def __repr__(self) -> str:
        return f"TaskContext(task_id={self.task_id!r}, attempt={self.attempt}, name={self.name!r})"
