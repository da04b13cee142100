"""tierq on a 3-node NATS cluster: R3 streams, and the loss of a node loses nothing.

Three real nats-server processes clustered on loopback (``tierq.engine.cluster.NatsCluster``),
a master and a region in this process, a worker; the faults are SIGKILLs of real server
processes, the log's stream leader first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import tierq
from tests.integration.itasks import add
from tierq.core import Settings
from tierq.credentials import NatsUsers
from tierq.engine import Subjects, connect
from tierq.engine.cluster import NatsCluster
from tierq.testing import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

TASKS = "tests.integration.itasks"


async def _stream_leader(cluster: NatsCluster, stream: str) -> str:
    engine = await connect(cluster.connect_options("master", name="probe"))
    try:
        info = await engine.js.stream_info(stream)
        assert info.cluster is not None and info.cluster.leader is not None
        return info.cluster.leader
    finally:
        await engine.close()


@contextlib.asynccontextmanager
async def _stack(
    tmp_path: Path, *, durable: bool = False
) -> AsyncIterator[tuple[NatsCluster, LocalCluster]]:
    """A 3-node cluster with per-role users; a master, a region and a worker on it."""
    users = NatsUsers.generate("tierq", regions=("default",))
    nats = NatsCluster(3, tmp_path / "nats", users=users, sync_always=durable)
    await nats.astart()
    stack = LocalCluster(
        nats.url,
        credentials=nats.credentials_file,
        settings=Settings(region_lease_seconds=4.0),
        heartbeat_interval=0.3,
    )
    try:
        await stack.start_master()
        await stack.start_region()
        await stack.start_worker(TASKS, concurrency=8)
        yield nats, stack
    finally:
        await stack.close()
        await nats.astop()
        nats.stop()


async def test_a_clustered_server_gets_three_replicas_and_runs_tasks(tmp_path: Path) -> None:
    async with _stack(tmp_path) as (nats, stack):
        subjects = Subjects()
        engine = await connect(nats.connect_options("master", name="check"))
        try:
            for stream in (
                subjects.log_stream,
                subjects.intake_stream,
                "TIERQ_EVENTS",
                f"KV_{subjects.leader_bucket}",
            ):
                info = await engine.js.stream_info(stream)
                assert info.config.num_replicas == 3, stream
        finally:
            await engine.close()
        async with tierq.App(stack.nats.for_role("client")) as app:
            handles = [await app.submit(add, i, 1) for i in range(50)]
            tasks = await app.wait_tasks([h.id for h in handles], timeout=60)
            assert [t.result for t in tasks] == [i + 1 for i in range(50)]


#: The node-loss run: tasks, producers awaiting one submit at a time, and when to kill.
NODE_LOSS_TASKS = 20_000
NODE_LOSS_PRODUCERS = 4
NODE_LOSS_AT = (4_000, 9_000, 14_000)


@pytest.mark.chaos_full
@pytest.mark.timeout(900)
async def test_node_losses_lose_nothing_acknowledged(tmp_path: Path) -> None:
    """SIGKILL the node leading the log's Raft group, restart it, then another node, during
    a 20,000-task run with the durable profile (every node fsyncs before it acknowledges).

    Every acknowledged task must succeed. The master's pause is what the producers see: the
    longest wait for one acknowledgement (printed). A JetStream leader election can outlast
    the master's 2 s leader lease: the master then steps down and leads again once the
    cluster answers.
    """
    async with _stack(tmp_path, durable=True) as (nats, stack):
        subjects = Subjects()
        app = tierq.App(stack.nats.for_role("client"), request_timeout=60)
        acked: list[str] = []
        gaps: list[float] = []
        reached = {n: asyncio.Event() for n in NODE_LOSS_AT}

        async def produce(n: int) -> None:
            last = time.monotonic()
            for i in range(n):
                handle = await app.submit(add, i, 1)
                acked.append(handle.id)
                if len(acked) in reached:
                    reached[len(acked)].set()
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        started = time.monotonic()
        share = NODE_LOSS_TASKS // NODE_LOSS_PRODUCERS
        producing = asyncio.gather(*(produce(share) for _ in range(NODE_LOSS_PRODUCERS)))

        async def until(acks: int) -> None:
            """Until ``acks`` submissions are acknowledged; a producer's error is raised."""
            waiter = asyncio.ensure_future(reached[acks].wait())
            await asyncio.wait({waiter, producing}, return_when=asyncio.FIRST_COMPLETED)
            if not waiter.done():
                waiter.cancel()
                producing.result()
                raise AssertionError(f"the producers stopped at {len(acked)} acknowledgements")

        first_at, restart_at, second_at = NODE_LOSS_AT
        await until(first_at)
        first = nats.node(await _stream_leader(nats, subjects.log_stream))
        first.kill()
        await until(restart_at)
        await first.astart()
        await nats.wait_healthy()
        second = next(n for n in nats.nodes if n is not first)
        second.kill()
        await until(second_at)
        await second.astart()
        await producing
        submitted = time.monotonic() - started
        tasks = await app.wait_tasks(acked, timeout=600)
        assert len(tasks) == len(acked) == NODE_LOSS_TASKS
        lost = [t.id for t in tasks if t.state.value != "succeeded"]
        assert not lost, f"{len(lost)} acknowledged tasks did not succeed, e.g. {lost[:3]}"
        print(
            f"{NODE_LOSS_TASKS} acknowledged in {submitted:.1f} s, all succeeded; longest gap "
            f"between acknowledgements of one producer: {max(gaps):.2f} s"
        )
        await app.close()
