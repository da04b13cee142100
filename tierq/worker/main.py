"""The worker process entry: load the tasks, connect, run until drained, honour signals."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from ..config import WorkerConfig
from ..engine import connect
from .registry import load_tasks
from .runtime import Worker, WorkerStatistics

__all__ = ["serve"]


async def serve(config: WorkerConfig, *, handle_signals: bool = True) -> WorkerStatistics:
    """Load ``config.modules``, connect and serve; returns the final statistics once drained.

    With ``handle_signals`` the first SIGTERM or SIGINT drains (finish running work within
    ``drain_grace``, take nothing new) and a second one cancels what still runs.

    Raises:
        InvalidRequestError: the modules cannot be loaded (``field="modules"``).
        EngineUnavailableError: NATS cannot be reached.
    """
    registry = load_tasks(config.modules)
    engine = await connect(config.nats.connect_options(name=f"tierq-worker-{config.region}"))
    worker = Worker(config, registry, engine)
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            # Not possible outside the main thread (or on Windows): then only drain() stops it.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, worker.on_signal)
                installed.append(sig)
    try:
        await worker.run()
        return worker.statistics()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await engine.close()
