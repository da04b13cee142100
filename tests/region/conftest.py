"""Region tests: a real nats-server, the master and region in-process or as processes, and
worker processes; every process a test starts is stopped by pid."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

import tierq
from tierq.core.model import Task, TaskState
from tierq.engine import EmbeddedNats, Engine, connect
from tierq.protocol import QueryKind, QueryRequest, RegionsReply, StatsReply

TASKS = "tests.region.rtasks"
ORPHAN = "tests.region.orphan_tasks"


@pytest.fixture
async def client(nats_server: EmbeddedNats) -> AsyncIterator[tierq.App]:
    app = tierq.App(nats=nats_server.url)
    try:
        yield app
    finally:
        await app.close()


class Processes:
    """``tierq`` processes started by one test; all killed (by pid) at the end."""

    def __init__(self, nats_url: str) -> None:
        self.nats_url = nats_url
        self.started: list[subprocess.Popen[bytes]] = []

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
        cmd = [sys.executable, "-m", "tierq", *args, "--nats", self.nats_url]
        proc = subprocess.Popen(cmd, env=env)
        self.started.append(proc)
        return proc

    def master(self) -> subprocess.Popen[bytes]:
        return self.spawn("master")

    def region(self, *extra: str) -> subprocess.Popen[bytes]:
        return self.spawn("region", *extra)

    def worker(
        self, *modules: str, concurrency: int = 4, extra: tuple[str, ...] = ()
    ) -> subprocess.Popen[bytes]:
        return self.spawn("worker", *modules, "--concurrency", str(concurrency), *extra)

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
        for proc in self.started:
            proc.wait(timeout=30)


@pytest.fixture
def processes(nats_server: EmbeddedNats) -> Iterator[Processes]:
    procs = Processes(nats_server.url)
    try:
        yield procs
    finally:
        procs.close()


@contextlib.asynccontextmanager
async def engine_as(
    server: EmbeddedNats, role: str, region: str = "default"
) -> AsyncIterator[Engine]:
    """An engine logged in as ``role`` (anonymous on an open server)."""
    eng = await connect(server.connect_options(role, region, name=f"tierq-test-{role}"))
    try:
        yield eng
    finally:
        await eng.close()


@pytest.fixture
async def worker_engine(nats_server: EmbeddedNats) -> AsyncIterator[Engine]:
    """Logged in as the region's workers: may call the region's worker operations."""
    async with engine_as(nats_server, "worker") as eng:
        yield eng


@pytest.fixture
async def api_engine(nats_server: EmbeddedNats) -> AsyncIterator[Engine]:
    """Logged in as the API: may also call a region's control operation."""
    async with engine_as(nats_server, "api") as eng:
        yield eng


async def until(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, every: float = 0.05
) -> float:
    """Poll ``check`` until true; returns the seconds it took, fails after ``timeout``."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout} s: {what}")
        await asyncio.sleep(every)
    return time.monotonic() - start


async def region_types(client: tierq.App, name: str = "default") -> tuple[str, ...] | None:
    master = await client.master()
    reply = await master.query(QueryRequest(kind=QueryKind.REGIONS), RegionsReply)
    for view in reply.regions:
        if view.name == name:
            return view.task_types
    return None


async def totals(client: tierq.App) -> dict[str, int]:
    master = await client.master()
    stats = (await master.query(QueryRequest(kind=QueryKind.STATS), StatsReply)).stats
    t = stats.totals
    return {
        "submitted": t.submitted,
        "succeeded": t.succeeded,
        "dead": t.dead,
        "duplicates": t.duplicate_reports,
    }


async def all_in(client: tierq.App, ids: list[str], state: TaskState) -> bool:
    """All of ``ids`` are in ``state``; False also while the master does not answer."""
    try:
        tasks: list[Task] = [await client.get(i) for i in ids]
    except tierq.TierqError:
        return False
    return all(t.state is state for t in tasks)
