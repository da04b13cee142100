"""Tasks the throughput benchmark runs: as cheap as a task can be."""

from __future__ import annotations

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
