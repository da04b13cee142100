"""Tasks the throughput benchmark runs: as cheap as a task can be."""

from __future__ import annotations

import asyncio
import time

import tierq

app = tierq.App()


@app.task(name="noop")
async def noop(i: int) -> int:
    return i


@app.task(name="stamp")
async def stamp(i: int) -> float:
    """Return when the task started, so the producer can compute submit->start latency."""
    return time.time()


@app.task(name="nap")
async def nap(seconds: float) -> None:
    """W3: a task that waits, holding its slot, and uses no CPU."""
    await asyncio.sleep(seconds)
