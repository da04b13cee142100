"""The worker runtime: ``tierq worker myapp.tasks --region eu --concurrency 16``.

A worker imports the given modules, registers the tasks of every :class:`tierq.App` in them
with its region, pulls (long-poll, only for free slots), runs each attempt under its timeout
and reports back in batches. Async functions run on the event loop; sync functions run in a
thread per slot, or in child processes with ``--pool process`` (``async`` and ``thread`` are
the same runtime: name the pool after what your tasks mostly are).

The worker sits above the SDK: it runs the SDK's task definitions, and the SDK knows
nothing of it. :class:`TaskContext` belongs to the SDK (task functions declare it) and is
re-exported here for the code that fills it.
"""

from __future__ import annotations

from ..client import TaskContext as TaskContext
from ..config import WorkerConfig
from .main import serve

__all__ = ["TaskContext", "run_worker"]


async def run_worker(config: WorkerConfig, *, handle_signals: bool = True) -> None:
    """Run one worker until it is drained (SIGTERM/SIGINT, or the region asks)."""
    await serve(config, handle_signals=handle_signals)
