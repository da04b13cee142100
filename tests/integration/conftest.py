"""A real stack per test: nats-server, master and region in-process, workers as asked."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

import tierq
from tierq.core import Settings
from tierq.engine import EmbeddedNats
from tierq.protocol import QueryKind, QueryRequest, StatsReply
from tierq.testing import LocalCluster, local_cluster

TASKS = "tests.integration.itasks"

#: Short leases so that loss and recovery happen within a test's time.
FAST_SETTINGS = Settings(region_lease_seconds=2.0)


@pytest.fixture
async def cluster(nats_server: EmbeddedNats) -> AsyncIterator[LocalCluster]:
    async with local_cluster(
        nats_server.url,
        settings=FAST_SETTINGS,
        worker_lease_seconds=1.5,
        heartbeat_interval=0.3,
        leader_lease_seconds=2.0,
    ) as c:
        yield c


@pytest.fixture
async def client(nats_server: EmbeddedNats) -> AsyncIterator[tierq.App]:
    app = tierq.App(nats=nats_server.url)
    try:
        yield app
    finally:
        await app.close()


async def ledger(client: tierq.App, *, settle: float = 10.0) -> dict[str, int]:
    """Totals once every task is terminal; asserts nothing was lost on the way.

    submitted = succeeded + dead + cancelled + skipped, read from the master.
    """
    master = await client.master()
    deadline = time.monotonic() + settle
    while True:
        stats = (await master.query(QueryRequest(kind=QueryKind.STATS), StatsReply)).stats
        t = stats.totals
        finished = t.succeeded + t.dead + t.cancelled + t.skipped
        if finished == t.submitted or time.monotonic() > deadline:
            break
        await _sleep(0.05)
    assert t.submitted == finished, f"ledger does not balance: {t}"
    return {
        "submitted": t.submitted,
        "succeeded": t.succeeded,
        "dead": t.dead,
        "cancelled": t.cancelled,
        "skipped": t.skipped,
        "duplicates": t.duplicate_reports,
    }


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
