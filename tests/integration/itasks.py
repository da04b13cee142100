"""Tasks the integration tests run on real workers (in-process or as subprocesses).

Tasks that must leave a trace outside the scheduler (execution order, attempts, a kill
marker) write to files whose paths the test passes in: that is the independent ledger.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import tierq

app = tierq.App()


@app.task(name="add")
async def add(x: int, y: int) -> int:
    return x + y


@app.task(name="concat")
async def concat(*parts: str) -> str:
    return "".join(parts)


@app.task(name="record")
async def record(path: str, label: str, ctx: tierq.TaskContext) -> str:
    """Append ``label attempt pid`` to ``path``: the order of execution, seen from outside."""
    with open(path, "a") as f:
        f.write(json.dumps({"label": label, "attempt": ctx.attempt, "pid": os.getpid()}) + "\n")
    return label


@app.task(name="nap")
async def nap(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@app.task(name="nap_slow_start", timeout=0.3, retries=0)
async def nap_with_timeout(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@app.task(name="always_fails", retries=2, backoff=0.05)
async def always_fails(message: str) -> None:
    raise ValueError(message)


@app.task(name="fails_then_succeeds", retries=3, backoff=0.05)
async def fails_then_succeeds(path: str, failures: int, ctx: tierq.TaskContext) -> int:
    if ctx.attempt <= failures:
        Path(path).write_text(str(ctx.attempt))
        raise RuntimeError(f"attempt {ctx.attempt} fails on purpose")
    return ctx.attempt


@app.task(name="with_progress")
async def with_progress(steps: int, ctx: tierq.TaskContext) -> int:
    for i in range(steps):
        ctx.progress((i + 1) / steps, f"step {i + 1} of {steps}")
        await asyncio.sleep(0.02)
    return steps


@app.task(name="die_first_time", retries=2)
async def die_first_time(marker: str, ledger: str, ctx: tierq.TaskContext) -> int:
    """The first attempt kills its own worker process (SIGKILL) mid-task."""
    with open(ledger, "a") as f:
        f.write(json.dumps({"attempt": ctx.attempt, "pid": os.getpid()}) + "\n")
    if not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        await asyncio.sleep(0.2)
        os.kill(os.getpid(), signal.SIGKILL)
    return ctx.attempt
