"""The process pool with real child processes (``python -m tierq.worker.child``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tierq import InvalidRequestError, TaskContext
from tierq.core.model import LeasedTask
from tierq.worker.processes import ChildTaskError, ProcessPool

from .conftest import ModuleMaker

SOURCE = """
import os, time
import tierq
app = tierq.App()

@app.task(name="p.add")
def add(x, y):
    return x + y

@app.task(name="p.steps")
def steps(n, ctx: tierq.TaskContext):
    for i in range(n):
        ctx.progress((i + 1) / n, f"step {i + 1}")
    print("task output goes to stderr, not into the frames")
    return {"pid": os.getpid(), "attempt": ctx.attempt, "parents": dict(ctx.parent_results)}

@app.task(name="p.fail")
def fail():
    raise KeyError("missing")

@app.task(name="p.bad_result")
def bad_result():
    return {1, 2}

@app.task(name="p.polite")
def polite(ctx: tierq.TaskContext):
    ctx.progress(0.0, "started")
    while not ctx.cancelled:
        time.sleep(0.01)
    return "stopped"

@app.task(name="p.stubborn")
def stubborn(ctx: tierq.TaskContext):
    ctx.progress(0.0, "started")
    time.sleep(60)

@app.task(name="p.die")
def die():
    os._exit(3)

@app.task(name="p.pid")
def pid():
    return os.getpid()
"""


def leased(name: str, *args: object, attempt: int = 1, **extra: object) -> LeasedTask:
    return LeasedTask(id=f"t-{name}", attempt=attempt, name=name, args=list(args), **extra)  # type: ignore[arg-type]


def ctx_for(
    task: LeasedTask, sink: Callable[[float, str | None], None] | None = None
) -> TaskContext:
    return TaskContext(task_id=task.id, attempt=task.attempt, name=task.name, on_progress=sink)


async def run_started(pool: ProcessPool, name: str) -> asyncio.Future[Any]:
    """Run task ``name`` (which reports progress first thing) on ``pool``; return once it is
    running in the child."""
    task = leased(name)
    running_now = asyncio.Event()
    running = asyncio.ensure_future(pool.run(task, ctx_for(task, lambda *_: running_now.set())))
    async with asyncio.timeout(10):
        await running_now.wait()
    return running


@asynccontextmanager
async def started(
    source: str, make_module: ModuleMaker, kill_grace: float
) -> AsyncIterator[ProcessPool]:
    p = ProcessPool((make_module(source),), size=1, kill_grace=kill_grace)
    await p.start()
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def pool(make_module: ModuleMaker) -> AsyncIterator[ProcessPool]:
    # A generous grace: a polite child on a loaded machine must not be mistaken for a stuck one.
    async with started(SOURCE, make_module, kill_grace=10.0) as p:
        yield p


async def test_runs_and_forwards_progress(pool: ProcessPool) -> None:
    assert await pool.run(leased("p.add", 2, 3), TaskContext.local()) == 5
    seen: list[tuple[float, str | None]] = []
    task = leased("p.steps", 4, attempt=3, parent_results={"a": 1})
    result = await pool.run(task, ctx_for(task, lambda f, m: seen.append((f, m))))
    assert result["attempt"] == 3
    assert result["parents"] == {"a": 1}
    assert seen[-1] == (1.0, "step 4")
    assert len(seen) == 4


async def test_exception_carries_type_and_traceback(pool: ProcessPool) -> None:
    with pytest.raises(ChildTaskError) as info:
        await pool.run(leased("p.fail"), TaskContext.local())
    assert info.value.summary.type == "KeyError"
    assert info.value.summary.traceback and "raise KeyError" in info.value.summary.traceback
    # the child is still usable
    assert await pool.run(leased("p.add", 1, 1), TaskContext.local()) == 2


async def test_result_must_be_json(pool: ProcessPool) -> None:
    with pytest.raises(ChildTaskError) as info:
        await pool.run(leased("p.bad_result"), TaskContext.local())
    assert info.value.summary.type == "TypeError"
    assert "JSON-compatible" in info.value.summary.message


async def test_unknown_task(pool: ProcessPool) -> None:
    with pytest.raises(ChildTaskError) as info:
        await pool.run(leased("nope"), TaskContext.local())
    assert info.value.summary.type == "UnknownTaskError"


async def test_cancel_sets_the_flag_and_keeps_the_child(pool: ProcessPool) -> None:
    before = await pool.run(leased("p.pid"), TaskContext.local())
    running = await run_started(pool, "p.polite")
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert await pool.run(leased("p.pid"), TaskContext.local()) == before


async def test_cancel_kills_a_child_that_ignores_it(make_module: ModuleMaker) -> None:
    async with started(SOURCE, make_module, kill_grace=0.3) as pool:
        await _kill_stubborn(pool)


async def _kill_stubborn(pool: ProcessPool) -> None:
    before = await pool.run(leased("p.pid"), TaskContext.local())
    running = await run_started(pool, "p.stubborn")
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    after = await pool.run(leased("p.pid"), TaskContext.local())
    assert after != before


async def test_dead_child_fails_the_attempt_and_is_replaced(pool: ProcessPool) -> None:
    with pytest.raises(ChildTaskError) as info:
        await pool.run(leased("p.die"), TaskContext.local())
    assert info.value.summary.type == "WorkerProcessDied"
    assert await pool.run(leased("p.add", 2, 2), TaskContext.local()) == 4


async def test_modules_that_do_not_load_fail_start(make_module: ModuleMaker) -> None:
    pool = ProcessPool((make_module("raise ImportError('nope')\n"),), size=2)
    with pytest.raises(InvalidRequestError, match="could not load"):
        await pool.start()


async def test_children_ignore_signals_meant_for_the_group(make_module: ModuleMaker) -> None:
    """Ctrl-C hits the whole process group; the parent drains, so children must finish."""
    import os
    import signal

    source = """
import os, time
import tierq
app = tierq.App()

@app.task(name="g.slow")
def slow(ctx: tierq.TaskContext):
    ctx.progress(0.0, "started")
    time.sleep(0.5)
    return os.getpid()
"""
    pool = ProcessPool((make_module(source),), size=1)
    await pool.start()
    try:
        (child,) = pool._children
        running = await run_started(pool, "g.slow")
        os.kill(child.pid, signal.SIGINT)
        os.kill(child.pid, signal.SIGTERM)
        assert await running == child.pid
    finally:
        await pool.close()
