"""One attempt as the worker runtime tracks it, and why it may be cancelled."""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
from dataclasses import dataclass
from typing import Any

from ..client import TaskContext
from ..core.model import LeasedTask

__all__ = ["Attempt", "Why", "wait_all_or"]


class Why(enum.Enum):
    """Why an attempt was cancelled; decides what is reported."""

    #: The region said the master no longer wants it: report nothing.
    REGION = "region"
    #: The worker is shutting down before it finished: report it lost.
    SHUTDOWN = "shutdown"


@dataclass(slots=True, eq=False)
class Attempt:
    leased: LeasedTask
    ctx: TaskContext
    task: asyncio.Task[None] | None = None
    why: Why | None = None
    thread: concurrent.futures.Future[Any] | None = None


async def wait_all_or(
    tasks: set[asyncio.Task[None]], stop: asyncio.Future[Any], within: float
) -> None:
    """Until every task is done, ``stop`` fires, or ``within`` seconds pass."""
    everything = asyncio.ensure_future(asyncio.wait(tasks))
    try:
        await asyncio.wait({everything, stop}, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        everything.cancel()
