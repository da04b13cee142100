"""After any registration completes the master holds exactly the live workers' task types.

The master is a real process, paused (SIGSTOP) while the region's registration is in flight;
workers join and drain meanwhile, in seeded random orders. Before issue #11 was fixed the
registration's reply overwrote whatever changed while it was pending (a type that joined was
never offered; one that left was offered for good).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import tierq
from tests.region import orphan_tasks, rtasks
from tests.region.conftest import ORPHAN, TASKS, Processes, region_types, until
from tierq.engine import EmbeddedNats, Engine, Subjects
from tierq.protocol import (
    Ack,
    DrainRequest,
    QueryKind,
    QueryRequest,
    RegionsReply,
    decode_reply,
    encode,
)
from tierq.region import Region
from tierq.testing import LocalCluster

#: Several real processes start per test; a loaded 2-core machine needs more than 60 s.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.chaos,
    pytest.mark.timeout(180),
]

MODULES = (TASKS, ORPHAN, "tests.region.third_tasks")


@pytest.fixture
async def cluster(nats_server: EmbeddedNats) -> AsyncIterator[LocalCluster]:
    cluster = LocalCluster(nats_server.url, worker_lease_seconds=30.0, heartbeat_interval=0.5)
    try:
        yield cluster
    finally:
        await cluster.close()


async def _master_up(client: tierq.App) -> bool:
    try:
        master = await client.master()
        await master.query(QueryRequest(kind=QueryKind.REGIONS), RegionsReply)
    except tierq.TierqError:
        return False
    return True


@pytest.mark.parametrize("seed", range(4))
async def test_registration_converges_to_the_live_types(
    seed: int,
    cluster: LocalCluster,
    processes: Processes,
    client: tierq.App,
    api_engine: Engine,
) -> None:
    engine = api_engine
    rng = random.Random(seed)
    master = processes.master()
    await until(lambda: _master_up(client), 30, "master answers")
    region = await cluster.start_region()
    for round_ in range(2):
        ops = [rng.choice(("join", "join", "drain")) for _ in range(3)]
        os.kill(master.pid, signal.SIGSTOP)
        try:
            for op in ops:
                await _apply(op, rng, cluster, region, engine)
                await asyncio.sleep(0.15)  # the registration is in flight (the master is paused)
        finally:
            os.kill(master.pid, signal.SIGCONT)

        async def converged() -> bool:
            if region.registration_due():
                return False
            return set(await region_types(client) or ()) == region.live_types()

        took = await until(converged, 15, f"seed {seed} round {round_}: {ops} converged")
        print(f"registration race, seed {seed} round {round_}: converged {took:.2f} s after")


async def _apply(
    op: str, rng: random.Random, cluster: LocalCluster, region: Region, engine: Engine
) -> None:
    live = [w for w in region.workers.values() if not w.draining]
    if op == "drain" and live:
        victim = rng.choice(live).id
        data = await engine.request(
            Subjects("tierq").region(region.name, "control"),
            encode(DrainRequest(worker=victim)),
            timeout=5,
        )
        decode_reply(data, Ack)
        return
    before = set(region.workers)
    await cluster.start_worker(rng.choice(MODULES), concurrency=2)
    await until(lambda: _joined(region, before), 10, "worker registered at the region")


async def _joined(region: Region, before: set[str]) -> bool:
    return bool(set(region.workers) - before)


async def test_a_region_paused_past_its_lease_offers_its_types_again(
    processes: Processes, client: tierq.App, tmp_path: Path
) -> None:
    """The issue's own scenario: the region (a process) is paused past its lease at the
    master (10 s) and its workers' leases; on resuming it registers a new instance while its
    workers come back. The master must end up with their types, and tasks must run."""
    processes.master()
    region = processes.region()
    processes.worker(TASKS, concurrency=2)
    processes.worker(ORPHAN, concurrency=2)
    want = {"r.big", "r.nap", "r.record", "orphan.t"}

    async def offered() -> bool:
        try:
            return set(await region_types(client) or ()) == want
        except tierq.TierqError:
            return False

    await until(offered, 60, "the region offers both workers' types")
    os.kill(region.pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(13.0)
    finally:
        os.kill(region.pid, signal.SIGCONT)
    took = await until(offered, 30, "the region offers both workers' types again")
    print(f"region paused 13 s: its types offered again {took:.2f} s after it resumed")
    ledger = tmp_path / "ran.jsonl"
    handle = await client.submit(rtasks.record, str(ledger), "after")
    orphan = await client.submit(orphan_tasks.orphan, 7)
    assert await handle.result(timeout=30) == "after"
    assert await orphan.result(timeout=30) == 7
