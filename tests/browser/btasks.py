"""Tasks the browser tests run: sleeps with progress, a failure with a traceback, and a task
whose name and error are HTML (the dashboard must show them as text)."""

from __future__ import annotations

import asyncio
from typing import Any

import tierq
from tierq import TaskContext

app = tierq.App()

#: A name a dashboard that renders data as HTML would execute.
XSS_NAME = "<img src=x onerror=alert(1)>"


@app.task(name="b.sleep", timeout=60)
async def sleep(seconds: float, ctx: TaskContext) -> dict[str, Any]:
    """Sleep in ten steps, reporting progress after each."""
    for step in range(10):
        await asyncio.sleep(seconds / 10)
        ctx.progress((step + 1) / 10, f"step {step + 1}/10")
    return {"slept": seconds}


@app.task(name="b.quick", timeout=30)
async def quick(n: int) -> int:
    await asyncio.sleep(0.01)
    return n * 2


@app.task(name="b.fail", timeout=30)
async def fail(message: str) -> None:
    raise ValueError(message)


@app.task(name=XSS_NAME, timeout=30)
async def xss(payload: str) -> None:
    raise RuntimeError(payload)
