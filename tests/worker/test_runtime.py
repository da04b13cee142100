"""The worker runtime against a scripted region on a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tierq.config import NatsConfig, WorkerConfig
from tierq.core.model import LeasedTask, OutcomeKind
from tierq.engine import EmbeddedNats, Engine
from tierq.worker.registry import load_tasks
from tierq.worker.runtime import Worker

from .conftest import ModuleMaker
from .scripted_region import ScriptedRegion

pytestmark = pytest.mark.integration

#: The root conftest's ``connect_as`` fixture: an Engine logged in as one role.
ConnectAs = Callable[..., Awaitable[Engine]]

SOURCE = """
import asyncio, threading, time
import tierq
app = tierq.App()
gate = threading.Event()

@app.task(name="t.add")
async def add(x, y):
    return x + y

@app.task(name="t.sync_mul")
def mul(x, y):
    return x * y

@app.task(name="t.fail")
def fail():
    raise ValueError("nope")

@app.task(name="t.sleep")
async def nap(seconds):
    await asyncio.sleep(seconds)
    return "rested"

@app.task(name="t.spin")
def spin(ctx: tierq.TaskContext):
    while not ctx.cancelled:
        time.sleep(0.01)
    return "saw the flag"

@app.task(name="t.progress")
async def progress(ctx):
    ctx.progress(0.25, "a quarter")
    await asyncio.sleep(0.3)
    ctx.progress(0.75, "most")
    await asyncio.sleep(0.3)
    return ctx.attempt

@app.task(name="t.parent")
def parent(value, ctx):
    return {"value": value, "parents": dict(ctx.parent_results)}

@app.task(name="t.chatty")
def chatty(n, ctx):
    for i in range(n):
        ctx.progress(i / n, "busy")
    return n

@app.task(name="t.blocked")
def blocked():
    gate.wait(30)
    return "released"

@app.task(name="t.declared_timeout", timeout=0.3)
async def declared_timeout():
    await asyncio.sleep(10)

@app.task(name="t.not_json")
async def not_json():
    return {1, 2}

@app.task(name="t.inner_type_error")
async def inner_type_error(x):
    return x + "a"
"""


def task(name: str, *args: Any, tid: str | None = None, attempt: int = 1, **kw: Any) -> LeasedTask:
    return LeasedTask(id=tid or name, attempt=attempt, name=name, args=list(args), **kw)


@pytest.fixture
def module(make_module: ModuleMaker) -> Iterator[str]:
    yield make_module(SOURCE)


@pytest.fixture
async def region(connect_as: ConnectAs) -> AsyncIterator[ScriptedRegion]:
    r = ScriptedRegion(await connect_as("region"))
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


WorkerFactory = Callable[..., Any]


@pytest.fixture
async def worker_engine(connect_as: ConnectAs) -> Engine:
    return await connect_as("worker")


@pytest.fixture
def running_worker(nats_server: EmbeddedNats, worker_engine: Engine, module: str) -> WorkerFactory:
    engine = worker_engine

    @asynccontextmanager
    async def start(**options: Any) -> AsyncIterator[tuple[Worker, asyncio.Task[None]]]:
        config = WorkerConfig(
            nats=NatsConfig.from_env(servers=nats_server.url).for_role("worker", "default"),
            modules=(module,),
            worker_id="w1",
            **options,
        )
        worker = Worker(config, load_tasks(config.modules), engine, pull_wait=0.5)
        runner = asyncio.get_running_loop().create_task(worker.run())
        try:
            await asyncio.wait_for(worker.wait_registered(), 10)
            yield worker, runner
        finally:
            worker.stop_now()
            await asyncio.wait_for(runner, 20)

    return start


async def test_registers_its_task_types(
    region: ScriptedRegion, running_worker: WorkerFactory
) -> None:
    async with running_worker(concurrency=3, pool="thread"):
        (reg,) = region.registrations
        assert reg.worker == "w1"
        assert reg.concurrency == 3
        assert reg.pool == "thread"
        assert "t.add" in reg.task_types and "t.blocked" in reg.task_types


async def test_runs_async_and_sync_tasks_and_reports(
    region: ScriptedRegion, running_worker: WorkerFactory
) -> None:
    async with running_worker():
        await region.push(task("t.add", 2, 3), task("t.sync_mul", 4, 5), task("t.fail"))
        await region.wait_for(lambda: len(region.outcomes) == 3)
    add, mul, fail = (region.outcome_of(t) for t in ("t.add", "t.sync_mul", "t.fail"))
    assert add is not None and add.kind is OutcomeKind.SUCCEEDED and add.result == 5
    assert mul is not None and mul.result == 20 and mul.worker == "w1"
    assert fail is not None and fail.kind is OutcomeKind.FAILED
    assert fail.error is not None and fail.error.type == "ValueError"
    assert fail.error.traceback and "raise ValueError" in fail.error.traceback


async def test_pulls_only_for_free_slots(
    region: ScriptedRegion, running_worker: WorkerFactory, module: str
) -> None:
    import sys

    async with running_worker(concurrency=2):
        gate = sys.modules[module].gate
        await region.push(*(task("t.blocked", tid=f"b{i}") for i in range(3)))
        await region.wait_for(lambda: len(region.queue) == 1)
        await asyncio.sleep(0.3)  # give the worker the chance to (wrongly) pull again
        pulls_while_full = [p for p in region.pulls[1:] if p.slots > 0]
        gate.set()
        await region.wait_for(lambda: len(region.outcomes) == 3)
    assert all(p.slots <= 2 for p in region.pulls)
    assert region.pulls[0].slots == 2
    # While both slots were busy the worker did not pull at all.
    assert len(pulls_while_full) <= 1


async def test_timeout_fails_the_attempt(
    region: ScriptedRegion, running_worker: WorkerFactory
) -> None:
    async with running_worker():
        await region.push(task("t.sleep", 30, timeout=0.2), task("t.spin", timeout=0.2))
        await region.wait_for(lambda: len(region.outcomes) == 2)
    for tid in ("t.sleep", "t.spin"):
        out = region.outcome_of(tid)
        assert out is not None and out.kind is OutcomeKind.FAILED
        assert out.error is not None and out.error.timeout
        assert out.error.type == "TaskTimeoutError"


async def test_progress_reaches_the_region(
    region: ScriptedRegion, running_worker: WorkerFactory
) -> None:
    async with running_worker():
        await region.push(task("t.progress", attempt=2))
        await region.wait_for(lambda: region.outcome_of("t.progress") is not None)
    fractions = [(p.fraction, p.message) for r in region.reports for p in r.progress]
    assert (0.25, "a quarter") in fractions
    assert (0.75, "most") in fractions
    out = region.outcome_of("t.progress")
    assert out is not None and out.result == 2


async def test_parent_results_reach_the_context(
    region: ScriptedRegion, running_worker: WorkerFactory
) -> None:
    async with running_worker():
        await region.push(task("t.parent", 7, parent_results={"p1": [1, 2]}))
        await region.wait_for(lambda: region.outcome_of("t.parent") is not None)
    out = region.outcome_of("t.parent")
    assert out is not None and out.result == {"value": 7, "parents": {"p1": [1, 2]}}


async def test_region_cancel_stops_the_attempt_without_an_outcome(
    region: ScriptedRegion, running_worker: WorkerFactory
) -> None:
    async with running_worker(concurrency=2) as (worker, _):
        await region.push(task("t.sleep", 30), task("t.spin"))
        await region.wait_for(lambda: any(len(h.running) == 2 for h in region.heartbeats))
        region.cancel_next = [("t.sleep", 1), ("t.spin", 1)]
        await region.wait_for(lambda: any(h.running == [] for h in region.heartbeats[-3:]))
        assert worker.statistics().busy_slots == 0
        await region.push(task("t.add", 1, 1))
        await region.wait_for(lambda: region.outcome_of("t.add") is not None)
    assert region.outcome_of("t.sleep") is None
    assert region.outcome_of("t.spin") is None


async def test_duplicate_delivery_runs_once(
    region: ScriptedRegion, running_worker: WorkerFactory
) -> None:
    async with running_worker(concurrency=4) as (worker, runner):
        await region.push(task("t.sleep", 0.3, tid="d"), task("t.sleep", 0.3, tid="d"))
        await region.wait_for(lambda: region.outcome_of("d") is not None)
        # A drain finishes what runs and reports it: a second run would be reported by now.
        worker.drain()
        async with asyncio.timeout(20):
            await runner
    assert len([o for o in region.outcomes if o.task_id == "d"]) == 1


async def test_drain_finishes_running_work_and_takes_nothing_new(
    region: ScriptedRegion, running_worker: WorkerFactory
) -> None:
    async with running_worker(concurrency=1) as (worker, runner):
        await region.push(task("t.sleep", 0.5, tid="first"))
        await region.wait_for(lambda: any(h.running for h in region.heartbeats))
        worker.drain()
        await region.push(task("t.add", 1, 2, tid="later"))
        await asyncio.wait_for(asyncio.shield(runner), 10)
        assert any(h.draining for h in region.heartbeats)
    first = region.outcome_of("first")
    assert first is not None and first.result == "rested"
    assert region.outcome_of("later") is None
    assert [t.id for t in region.queue] == ["later"]


async def test_drain_grace_gives_up_what_is_left_as_lost(
    region: ScriptedRegion, running_worker: WorkerFactory
) -> None:
    async with running_worker(drain_grace=0.2) as (worker, runner):
        await region.push(task("t.sleep", 30, tid="long"))
        await region.wait_for(lambda: any(h.running for h in region.heartbeats))
        worker.drain()
        await asyncio.wait_for(asyncio.shield(runner), 10)
    out = region.outcome_of("long")
    assert out is not None and out.kind is OutcomeKind.LOST
    assert out.error is not None and out.error.lost


async def test_region_asking_to_drain_stops_the_worker(
    region: ScriptedRegion, running_worker: WorkerFactory
) -> None:
    async with running_worker() as (worker, runner):
        region.drain = True
        await asyncio.wait_for(asyncio.shield(runner), 10)
        assert worker.draining


async def test_unknown_to_the_region_registers_again(
    region: ScriptedRegion, running_worker: WorkerFactory
) -> None:
    async with running_worker():
        region.unknown_next = True
        await region.wait_for(lambda: len(region.registrations) >= 2)


async def test_unknown_task_fails_clearly(
    region: ScriptedRegion, running_worker: WorkerFactory
) -> None:
    async with running_worker():
        await region.push(task("not.here"))
        await region.wait_for(lambda: region.outcome_of("not.here") is not None)
    out = region.outcome_of("not.here")
    assert out is not None and out.error is not None and out.error.type == "UnknownTaskError"


async def test_process_pool_runs_sync_tasks_in_children(
    region: ScriptedRegion, running_worker: WorkerFactory
) -> None:
    async with running_worker(pool="process", concurrency=2):
        await region.push(
            task("t.sync_mul", 6, 7), task("t.add", 1, 1), task("t.spin", timeout=0.3)
        )
        await region.wait_for(lambda: len(region.outcomes) == 3)
    mul = region.outcome_of("t.sync_mul")
    assert mul is not None and mul.result == 42
    spin = region.outcome_of("t.spin")
    assert spin is not None and spin.error is not None and spin.error.timeout


async def test_progress_from_a_tight_loop_in_a_thread_is_coalesced(
    region: ScriptedRegion, running_worker: WorkerFactory
) -> None:
    async with running_worker(pool="thread"):
        await region.push(task("t.chatty", 100_000))
        await region.wait_for(lambda: region.outcome_of("t.chatty") is not None, timeout=40)
    out = region.outcome_of("t.chatty")
    assert out is not None and out.result == 100_000
    progress_reports = [r for r in region.reports if r.progress]
    assert len(progress_reports) < 50


async def test_failures_that_cannot_succeed_on_a_retry_are_permanent(
    region: ScriptedRegion, running_worker: WorkerFactory
) -> None:
    """Issue 15: wrong arguments and a result that is not JSON were retried (and fed the
    breaker); they are now reported permanent. A TypeError the function itself raises is an
    ordinary failure: it may depend on data that changes."""
    async with running_worker():
        await region.push(
            task("t.add", 1, tid="missing"),
            task("t.add", 1, 2, 3, tid="extra"),
            task("t.not_json"),
            task("t.inner_type_error", 1),
        )
        await region.wait_for(lambda: len(region.outcomes) == 4)
    for tid in ("missing", "extra", "t.not_json"):
        out = region.outcome_of(tid)
        assert out is not None and out.error is not None, tid
        assert out.error.permanent and out.error.type == "TypeError", (tid, out.error)
    missing = region.outcome_of("missing")
    assert missing is not None and missing.error is not None
    assert "missing a required argument: 'y'" in missing.error.message
    inner = region.outcome_of("t.inner_type_error")
    assert inner is not None and inner.error is not None
    assert inner.error.type == "TypeError" and not inner.error.permanent


async def test_the_declared_timeout_holds_when_the_lease_has_none(
    region: ScriptedRegion, running_worker: WorkerFactory
) -> None:
    """A task submitted by name before any worker declared its options reaches the worker
    without a timeout: the code's own ``timeout=`` still applies, and is registered."""
    async with running_worker():
        await region.wait_for(lambda: len(region.registrations) >= 1)
        await region.push(task("t.declared_timeout"))
        await region.wait_for(lambda: region.outcome_of("t.declared_timeout") is not None)
    out = region.outcome_of("t.declared_timeout")
    assert out is not None and out.error is not None and out.error.timeout
    assert "0.3 s timeout" in out.error.message
    declared = region.registrations[0].declared
    assert declared["t.declared_timeout"].timeout == 0.3 and "t.add" not in declared
