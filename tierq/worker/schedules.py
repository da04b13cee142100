"""A worker registers the schedules its apps declare in code, once, when it starts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Protocol

from ..client import declare_all
from ..core import ScheduleSpec
from ..engine import Engine, Subjects
from ..errors import EngineUnavailableError, TierqError
from ..rpc import MasterClient

__all__ = ["declare_schedules"]

log = logging.getLogger("tierq.worker")


class _Worker(Protocol):
    id: str
    engine: Engine
    subjects: Subjects


async def declare_schedules(
    worker: _Worker, schedules: Mapping[str, ScheduleSpec], stopping: asyncio.Event
) -> None:
    """Declare ``schedules`` to the master (new ones are made, stored ones stay as they are
    and a difference is logged), retrying while no master answers, until ``stopping``."""
    client = MasterClient(worker.engine, worker.subjects)
    delay = 0.1
    while not stopping.is_set():
        try:
            await declare_all(client, dict(schedules))
            return
        except EngineUnavailableError as exc:
            log.warning("worker %s: schedules not registered yet (%s)", worker.id, exc)
        except TierqError as exc:
            log.error("worker %s: a declared schedule was refused: %s", worker.id, exc)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await stopping.wait()
        delay = min(delay * 2, 5.0)
