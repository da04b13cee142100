"""The master reads time only through its injected clocks (issue 13, item 5).

Within a term, time is the wall clock at the term's start plus the monotonic time since, so
setting the host's wall clock moves no deadline. With both clocks injected the test decides
what the master sees: a real nats-server, a master in this process.
"""

from __future__ import annotations

import asyncio

import pytest

import tierq
from tierq.config import MasterConfig, NatsConfig
from tierq.engine import EmbeddedNats, connect
from tierq.master.service import Master

pytestmark = pytest.mark.integration

START = 2_000_000_000.0  # 2033-05-18T03:33:20Z


class Clock:
    """A clock that moves only when told to."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_the_master_keeps_time_with_the_clocks_it_is_given(
    nats_server: EmbeddedNats,
) -> None:
    wall, mono = Clock(START), Clock(100.0)
    nats = NatsConfig.from_env(servers=nats_server.url).for_role("master")
    engine = await connect(nats.connect_options(name="tierq-test-master"))
    master = Master(MasterConfig(nats=nats), engine, wall_clock=wall, monotonic=mono)
    run = asyncio.create_task(master.run())
    try:
        async with asyncio.timeout(20):
            await master.ready.wait()
        assert master.now() == START  # the term started at the injected wall time
        mono.now += 5.0
        wall.now += 3600.0  # someone sets the host's clock: the term does not follow
        assert master.now() == START + 5.0
        async with tierq.App(nats_server.url) as app:
            handle = await app.submit("t.clock")
            task = await handle.status()
        assert task.submitted_at == START + 5.0
    finally:
        master.stop()
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        await engine.close()
