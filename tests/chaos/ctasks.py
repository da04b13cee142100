"""The task the chaos suite runs: it writes its own ledger line, outside the scheduler.

Each execution appends ``{"key", "attempt", "pid"}`` to the file named by
``TIERQ_CHAOS_LEDGER`` with one ``write`` on an ``O_APPEND`` descriptor, so lines from
concurrent workers never interleave. The ledger is the independent record the checks hold the
scheduler's own account against.
"""

from __future__ import annotations

import asyncio
import json
import os

import tierq

app = tierq.App()


@app.task(name="chaos.work", retries=20, backoff=0.05)
async def work(key: str, ms: float, ctx: tierq.TaskContext) -> str:
    await asyncio.sleep(ms / 1000)
    line = json.dumps({"key": key, "attempt": ctx.attempt, "pid": os.getpid()}) + "\n"
    fd = os.open(os.environ["TIERQ_CHAOS_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return key


@app.task(name="chaos.fire", retries=20, backoff=0.05)
async def fire(fired_for: float, ctx: tierq.TaskContext) -> float:
    """A schedule's run: writes the fire time it was started for, and its own id."""
    line = json.dumps({"fire": fired_for, "task": ctx.task_id, "attempt": ctx.attempt}) + "\n"
    fd = os.open(os.environ["TIERQ_CHAOS_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return fired_for
