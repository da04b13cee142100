"""A real stack for SDK tests: nats-server, master and region in the test, a worker too."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest

import tierq
from tierq.core.settings import AdmissionSettings, Settings
from tierq.engine import EmbeddedNats
from tierq.testing import LocalCluster, local_cluster

TASKS = """
import asyncio, threading, time
import tierq

app = tierq.App()
cancel_seen: list[str] = []
order: list[str] = []
gate = threading.Event()


class CustomError(Exception):
    pass


@app.task(name="s.add")
async def add(x, y):
    return x + y


@app.task(name="s.mul")
def mul(x, y):
    return x * y


@app.task(name="s.fail", retries=0)
def fail(message):
    raise CustomError(message)


@app.task(name="s.nap", timeout=0.3, retries=0)
async def nap(seconds):
    await asyncio.sleep(seconds)


@app.task(name="s.halfway")
async def halfway(ctx):
    ctx.progress(0.5, "halfway there")
    await asyncio.sleep(60)


@app.task(name="s.spin")
def spin(ctx: tierq.TaskContext):
    while not ctx.cancelled:
        time.sleep(0.01)
    cancel_seen.append(ctx.task_id)


@app.task(name="s.blocker")
def blocker():
    gate.wait(30)


@app.task(name="s.record")
def record(label):
    order.append(label)
    return label


@app.task(name="s.rows")
def rows(n):
    return list(range(n))


@app.task(name="s.total")
def total(values, factor=1):
    return sum(values) * factor
"""


@pytest.fixture
def tasks_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    name = f"tq_stack_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(TASKS))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(name)
    yield module
    sys.modules.pop(name, None)


@pytest.fixture
async def cluster(nats_server: EmbeddedNats) -> AsyncIterator[LocalCluster]:
    async with local_cluster(nats_server.url, heartbeat_interval=0.2) as c:
        yield c


@pytest.fixture
async def app(cluster: LocalCluster) -> AsyncIterator[tierq.App]:
    async with tierq.App(cluster.nats_url) as client:
        yield client


@pytest.fixture
async def small_cluster(nats_server: EmbeddedNats) -> AsyncIterator[LocalCluster]:
    """A stack whose master admits at most 5 queued tasks (backpressure tests)."""
    settings = Settings(admission=AdmissionSettings(max_queued=5, soft_watermark=1.0))
    async with local_cluster(nats_server.url, settings=settings) as c:
        yield c
