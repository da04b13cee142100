"""The leader's tick loop wakes when time-driven work is due, not on every change.

A real nats-server and a master in this process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

import tierq
from tierq.config import MasterConfig, NatsConfig
from tierq.core import Event, SchedulerState, TaskState
from tierq.engine import EmbeddedNats, connect
from tierq.master import service
from tierq.master.service import Master

pytestmark = pytest.mark.integration


@pytest.fixture
async def master(nats_server: EmbeddedNats) -> AsyncIterator[Master]:
    nats = NatsConfig.from_env(servers=nats_server.url).for_role("master")
    engine = await connect(nats.connect_options(name="tierq-test-master"))
    master = Master(MasterConfig(nats=nats), engine)
    run = asyncio.create_task(master.run())
    try:
        async with asyncio.timeout(20):
            await master.ready.wait()
        yield master
    finally:
        master.stop()
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        await engine.close()


def count_ticks(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the time of every tick the master runs from now on (each tick also asks which
    schedules fire, through this module-level function, which is wrapped, not replaced)."""
    real = service.fire_due
    ticks: list[float] = []

    def fire_due(state: SchedulerState, now: float) -> list[Event]:
        ticks.append(time.monotonic())
        return real(state, now)

    monkeypatch.setattr(service, "fire_due", fire_due)
    return ticks


async def test_submissions_with_nothing_due_do_not_tick(
    master: Master, nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with tierq.App(nats_server.url) as app:
        await app.submit("t.tick")  # the first one may start a retention timer
        ticks = count_ticks(monkeypatch)
        for _ in range(100):
            await app.submit("t.tick")
    # 100 changes: before, each one woke the loop for a tick; now only the loop's own
    # wake-ups (at most one a second) and none per change.
    assert len(ticks) <= 5, f"{len(ticks)} ticks for 100 submissions"


async def test_a_change_that_makes_work_due_sooner_wakes_the_loop(
    master: Master, nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with tierq.App(nats_server.url) as app:
        ticks = count_ticks(monkeypatch)
        async with asyncio.timeout(5):
            while not ticks:  # noqa: ASYNC110 (the loop's own wake-up, in the master)
                await asyncio.sleep(0.01)
        # The loop has just ticked and, with nothing due, sleeps for a second.
        submitted = time.monotonic()
        handle = await app.submit("t.tick", delay=0.2)
        async with asyncio.timeout(10):
            # Polling the master: the state lives there, not in an event of this process.
            while (state := (await handle.status()).state) is TaskState.PENDING:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert state is TaskState.READY
    # Released by a tick the submission scheduled for its run_at, not by the loop's own
    # wake-up a second after it fell asleep.
    assert any(0.15 <= t - submitted < 0.7 for t in ticks), [t - submitted for t in ticks]
