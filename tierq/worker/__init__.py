"""The worker runtime: ``tierq worker myapp.tasks --region eu --concurrency 16``.

A worker imports the given modules, registers the tasks of every :class:`tierq.App` in them
with its region, pulls (long-poll, only for free slots), runs each attempt under its timeout
and reports back in batches. Async functions run on the event loop; sync functions run in a
thread per slot, or in child processes with ``--pool process`` (``async`` and ``thread`` are
the same runtime: name the pool after what your tasks mostly are).

Only :class:`TaskContext` is imported eagerly: task modules import it, and the runtime
imports the SDK, so loading the runtime here would be circular.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .context import TaskContext as TaskContext

if TYPE_CHECKING:
    from ..config import WorkerConfig

__all__ = ["TaskContext", "run_worker"]


async def run_worker(config: WorkerConfig, *, handle_signals: bool = True) -> None:
    """Run one worker until it is drained (SIGTERM/SIGINT, or the region asks)."""
    from .main import serve

    await serve(config, handle_signals=handle_signals)
