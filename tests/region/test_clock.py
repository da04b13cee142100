"""The region reads time only through its injected clock: worker leases follow that clock.

A real nats-server and an in-process master and region; the workers are raw requests on the
region's subjects, so nothing else heartbeats. The lease is 10 s on the region's clock and
the test takes well under one real second of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tierq.config import RegionConfig
from tierq.engine import EmbeddedNats, Engine, Subjects, connect
from tierq.protocol import (
    RegisterWorkerReply,
    RegisterWorkerRequest,
    WorkerHeartbeat,
    WorkerHeartbeatReply,
    decode_reply,
    encode,
)
from tierq.region import Region
from tierq.testing import LocalCluster

pytestmark = pytest.mark.integration

LEASE = 10.0


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextlib.asynccontextmanager
async def region_on(nats_server: EmbeddedNats, clock: ManualClock) -> AsyncIterator[Region]:
    cluster = LocalCluster(nats_server.url)
    await cluster.start_master()
    nats = cluster.nats.for_role("region", "default")
    engine = await connect(nats.connect_options(name="tierq-test-region"))
    config = RegionConfig(nats=nats, worker_lease_seconds=LEASE, heartbeat_interval=1.0)
    region = Region(config, engine, clock=clock)
    task = asyncio.create_task(region.run())
    try:
        async with asyncio.timeout(20):
            await region.ready.wait()
        yield region
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await engine.close()
        await cluster.close()


async def register(engine: Engine, worker: str) -> None:
    subject = Subjects("tierq").region("default", "register")
    request = RegisterWorkerRequest(worker=worker, task_types=["t"], concurrency=1)
    decode_reply(await engine.request(subject, encode(request)), RegisterWorkerReply)


async def heartbeat(engine: Engine, worker: str) -> None:
    subject = Subjects("tierq").region("default", "heartbeat")
    reply = decode_reply(
        await engine.request(subject, encode(WorkerHeartbeat(worker=worker))),
        WorkerHeartbeatReply,
    )
    assert not reply.unknown


async def test_a_worker_is_lost_when_the_region_clock_passes_its_lease(
    nats_server: EmbeddedNats,
) -> None:
    clock = ManualClock()
    async with (
        region_on(nats_server, clock) as region,
        await connect(nats_server.connect_options("worker", "default")) as engine,
    ):
        await register(engine, "silent")
        await register(engine, "beating")
        assert region.workers["silent"].last_heartbeat == clock.now
        clock.advance(LEASE * 0.6)
        await heartbeat(engine, "beating")
        assert region.workers["beating"].last_heartbeat == clock.now
        # "silent" is now 1.2 leases silent on the region's clock, "beating" 0.6.
        clock.advance(LEASE * 0.6)
        async with asyncio.timeout(10):
            while "silent" in region.workers:  # noqa: ASYNC110 - the region has no event for it
                await asyncio.sleep(0.02)
        # One pass of the lease check judged both at the same reading of the clock.
        assert "beating" in region.workers
