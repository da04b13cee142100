"""Tasks the region tests run on real worker processes.

Tasks that must leave a trace outside the scheduler write to files whose paths the test
passes in: that is the independent ledger of what ran, and how often.
"""

from __future__ import annotations

import asyncio
import json
import os

import tierq

app = tierq.App()


@app.task(name="r.record")
async def record(path: str, label: str, ctx: tierq.TaskContext) -> str:
    """Append ``label attempt pid`` to ``path``."""
    with open(path, "a") as f:
        f.write(json.dumps({"label": label, "attempt": ctx.attempt, "pid": os.getpid()}) + "\n")
    return label


@app.task(name="r.nap")
async def nap(seconds: float, path: str, label: str, ctx: tierq.TaskContext) -> str:
    """Sleep, then record like :func:`record`: a task that can be caught mid-run."""
    await asyncio.sleep(seconds)
    with open(path, "a") as f:
        f.write(json.dumps({"label": label, "attempt": ctx.attempt, "pid": os.getpid()}) + "\n")
    return label


@app.task(name="r.big")
async def big(size: int, seconds: float) -> str:
    """A large result: several of them do not fit in one message to the master."""
    await asyncio.sleep(seconds)
    return "x" * size
