"""The master's view of its lease: held only while its own clock says it surely is."""

from __future__ import annotations

import asyncio
import time

import pytest

from tierq.engine import Engine, LeaderLease
from tierq.master.leadership import Leadership

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_held_until_the_lease_may_have_run_out(engine: Engine) -> None:
    clock = Clock()
    lead = Leadership(LeaderLease(engine, ttl=2.0), "a", ttl=2.0, clock=clock)
    await lead.open()
    assert not lead.held()
    assert await lead.try_acquire()
    assert lead.held()
    # Valid until the acquire's send time + ttl - margin, by this process's clock alone.
    clock.now += 2.0 - lead.margin - 0.01
    assert lead.held()
    clock.now += 0.02
    assert not lead.held()
    # A confirmed renewal sent now extends it from now.
    await lead.renew()
    assert lead.held() and lead.remaining() == pytest.approx(2.0 - lead.margin)


async def test_concurrent_renewals_do_not_depose_the_holder(engine: Engine) -> None:
    """Two renewals at once would both compare-and-set against one revision; the loser must
    not read as a lost lease (a snapshot renews beside the keeper)."""
    lead = Leadership(LeaderLease(engine, ttl=2.0), "a", ttl=2.0)
    await lead.open()
    assert await lead.try_acquire()
    await asyncio.gather(*(lead.renew() for _ in range(5)))
    assert lead.held()


async def test_a_standby_takes_the_lease_once_it_expires(engine: Engine) -> None:
    first = Leadership(LeaderLease(engine, ttl=1.0), "a", ttl=1.0)
    second = Leadership(LeaderLease(engine, ttl=1.0), "b", ttl=1.0)
    await first.open()
    await second.open()
    assert await first.try_acquire()
    assert not await second.try_acquire()
    first.forget()  # as if it died: nothing released, the key expires on the server
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await second.try_acquire():  # noqa: ASYNC110 - an expiry sends no event
        await asyncio.sleep(second.poll_interval)
    assert loop.time() - start < 3.0
    assert second.held()


async def test_keep_reports_a_lease_taken_over(engine: Engine) -> None:
    lead = Leadership(LeaderLease(engine, ttl=1.0), "a", ttl=1.0)
    await lead.open()
    assert await lead.try_acquire()
    lost: list[str] = []
    first_until = time.monotonic() + lead.remaining()  # its clock is time.monotonic
    keeper = asyncio.create_task(lead.keep(lost.append))
    async with asyncio.timeout(5):  # until the keeper has renewed once
        while time.monotonic() + lead.remaining() < first_until + 0.1:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    assert lead.held() and not lost
    # Someone deletes the key behind its back and takes it: the next renewal is refused.
    other = LeaderLease(engine, ttl=1.0)
    kv = await engine.js.key_value(other.subjects.leader_bucket)
    await kv.purge(other.key)
    assert await other.try_acquire("b")
    await asyncio.wait_for(keeper, timeout=5)
    assert lost and not lead.held()
