"""Autoscaler tests: a master and region in this process, workers as real processes."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tierq.autoscale import AutoscaleConfig, Autoscaler
from tierq.core.settings import AutoscaleSettings, Settings
from tierq.engine import EmbeddedNats, connect
from tierq.testing import LocalCluster, local_cluster

SOURCE = """
import asyncio
import tierq

app = tierq.App()

@app.task(name="a.nap")
async def nap(seconds):
    await asyncio.sleep(seconds)
    return seconds
"""


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A task module importable here and by the worker processes (through PYTHONPATH)."""
    name = f"tq_scale_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.getcwd()]))
    yield name
    sys.modules.pop(name, None)


ClusterWith = Callable[[AutoscaleSettings], AbstractAsyncContextManager[LocalCluster]]


@pytest.fixture
def cluster_with(nats_server: EmbeddedNats) -> ClusterWith:
    """``async with cluster_with(autoscale_settings) as cluster``: a master and a region."""

    def make(scale: AutoscaleSettings) -> AbstractAsyncContextManager[LocalCluster]:
        return local_cluster(
            nats_server.url,
            settings=Settings(autoscale=scale),
            worker_lease_seconds=1.5,
            heartbeat_interval=0.2,
        )

    return make


@asynccontextmanager
async def running_autoscaler(
    cluster: LocalCluster, module: str, state_dir: Path, **options: Any
) -> AsyncIterator[Autoscaler]:
    """An autoscaler in this process, logged in as its NATS role; its workers are real
    ``tierq worker`` processes. Stopped (its workers drained) on exit."""
    engine = await connect(
        cluster.nats.for_role("autoscaler").connect_options(name="tierq-test-autoscale")
    )
    config = AutoscaleConfig(
        nats=cluster.nats,
        modules=(module,),
        region=cluster.region_name,
        concurrency=8,
        drain_grace=10.0,
        state_dir=str(state_dir),
        interval=0.25,
    )
    scaler = Autoscaler(msgspec.structs.replace(config, **options), engine)
    task = asyncio.create_task(scaler.run())
    try:
        async with asyncio.timeout(10):
            await asyncio.wait(
                {task, asyncio.ensure_future(scaler.ready.wait())},
                return_when=asyncio.FIRST_COMPLETED,
            )
        if task.done():
            task.result()
        yield scaler
    finally:
        scaler.stop()
        await asyncio.wait({task})
        await engine.close()
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` (a cheap, in-process check) until true; fail naming ``what``."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                if predicate():
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {timeout} s: {what}") from None
