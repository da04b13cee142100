"""A minority partition of the leader master's NATS node: it steps down, nothing is served stale.

Three clustered nats-server processes whose routes all go through TCP proxies, so one node can
be cut off from the other two while it keeps its clients. Master m1 (the leader) is connected to
node 3 only; m2 (a standby), the region and the worker to nodes 1 and 2. A client on node 3 can
reach only m1. Node 3 is partitioned away: m1 can no longer renew its lease (the leader bucket
needs a quorum), so within a lease it stops answering even the client on its own node; m2 takes
over on the majority side, where work goes on; after the partition heals nothing acknowledged
is lost and m1 stands by.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tierq
from tests.chaos.proxy import Proxy
from tests.integration.itasks import add
from tierq.config import NatsConfig
from tierq.engine import EmbeddedNats, LeaderLease, Subjects, connect
from tierq.engine.embedded import _aprobe_health
from tierq.errors import TierqError
from tierq.protocol import QueryKind, QueryRequest, StatsReply
from tierq.testing import LocalCluster, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
TASKS = "tests.integration.itasks"


class PartitionableCluster:
    """Three clustered nodes; every route between two nodes goes through its own proxy."""

    def __init__(self, tmp: Path) -> None:
        self.route_ports = [free_port() for _ in range(3)]
        self.proxies: dict[tuple[int, int], Proxy] = {
            (i, j): Proxy(self.route_ports[j]) for i in range(3) for j in range(3) if i != j
        }
        self.nodes: list[EmbeddedNats] = []
        for i in range(3):
            routes = ", ".join(
                f'"nats-route://127.0.0.1:{self.proxies[(i, j)].port}"' for j in range(3) if j != i
            )
            block = (
                f'cluster {{ name: "part", listen: "127.0.0.1:{self.route_ports[i]}", '
                f"no_advertise: true, routes: [{routes}] }}"
            )
            self.nodes.append(
                EmbeddedNats(
                    tmp / f"n{i + 1}",
                    server_name=f"n{i + 1}",
                    extra_config=block,
                    startup_timeout=60.0,
                )
            )

    async def start(self) -> None:
        for proxy in self.proxies.values():
            await proxy.start()
        for node in self.nodes:
            node._spawn()
        await asyncio.gather(*(node.astart() for node in self.nodes))
        deadline = time.monotonic() + 60
        for node in self.nodes:  # a JetStream meta leader, or JetStream requests go unanswered
            while not await _aprobe_health(node.host, node.monitor_port, query=""):
                assert time.monotonic() < deadline, f"{node.server_name} is not healthy"
                await asyncio.sleep(0.1)

    def isolate(self, k: int) -> None:
        for (i, j), proxy in self.proxies.items():
            if k in (i, j):
                proxy.cut()

    def heal(self) -> None:
        for proxy in self.proxies.values():
            proxy.heal()

    def url(self, *indexes: int) -> str:
        return ",".join(self.nodes[i].url for i in indexes)

    async def close(self) -> None:
        for proxy in self.proxies.values():
            await proxy.close()
        for node in self.nodes:
            await node.astop()


def _spawn_master(tmp: Path, name: str, url: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = open(tmp / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
    cmd = [sys.executable, "-m", "tierq", "master", "--holder", name, "--nats", url]
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    return proc


async def _holder(url: str) -> str | None:
    """Who holds the leader lease, as the majority's bucket says (None: nobody, or unknown)."""
    engine = await connect(NatsConfig(servers=tuple(url.split(","))).connect_options(name="p"))
    try:
        return await LeaderLease(engine, Subjects(), ttl=2.0).current_holder()
    except TierqError:
        return None
    finally:
        await engine.close()


async def _lease_revision(url: str) -> int | None:
    """The revision of the leader key in the majority's bucket (it rises with each renewal)."""
    engine = await connect(NatsConfig(servers=tuple(url.split(","))).connect_options(name="p"))
    try:
        bucket = await engine.js.key_value(Subjects().leader_bucket)
        return (await bucket.get("leader")).revision
    except Exception:  # no bucket, no key, no stream leader: unknown
        return None
    finally:
        await engine.close()


async def _m1_keeps_the_lease(majority: str) -> None:
    """Until the majority's bucket shows two more renewals by m1. In a fresh cluster the lease
    bucket's stream can lose its Raft leader just after it is made, and m1 its lease with it
    (seen: "could not renew the leader lease ... no response from stream", then m2 leading):
    the partition below is only meaningful while m1 leads, so say so if it does not."""
    start = await _lease_revision(majority)
    deadline = time.monotonic() + 20
    while True:
        holder, rev = await _holder(majority), await _lease_revision(majority)
        if holder == "m1" and start is not None and rev is not None and rev >= start + 2:
            return
        assert holder in ("m1", None), f"m1 lost the lease before the partition to {holder}"
        assert time.monotonic() < deadline, "m1 does not renew its lease before the partition"
        await asyncio.sleep(0.2)


async def _answers(app: tierq.App) -> bool:
    with contextlib.suppress(TierqError):
        await (await app.master()).call(
            "query", QueryRequest(kind=QueryKind.STATS), StatsReply, timeout=1.0
        )
        return True
    return False


@pytest.mark.chaos_full
async def test_a_partitioned_leader_steps_down_and_serves_nothing_stale(tmp_path: Path) -> None:
    cluster = PartitionableCluster(tmp_path)
    masters: dict[str, subprocess.Popen[bytes]] = {}
    stack: LocalCluster | None = None
    try:
        await cluster.start()
        majority, minority = cluster.url(0, 1), cluster.url(2)
        masters["m1"] = _spawn_master(tmp_path, "m1", minority)
        deadline = time.monotonic() + 60
        while await _holder(majority) != "m1":
            assert time.monotonic() < deadline, "m1 never led"
            await asyncio.sleep(0.2)
        masters["m2"] = _spawn_master(tmp_path, "m2", majority)
        stack = LocalCluster(majority, heartbeat_interval=0.3)
        await stack.start_region()
        await stack.start_worker(TASKS, concurrency=8)
        near = tierq.App(minority, request_timeout=5)
        far = tierq.App(majority, request_timeout=20)
        before = [await far.submit(add, i, 1) for i in range(20)]
        assert await _answers(near)
        await _m1_keeps_the_lease(majority)

        cluster.isolate(2)
        cut_at = time.monotonic()
        # m1 must stop answering, even the client on its own node, within about a lease.
        while await _answers(near):
            assert time.monotonic() - cut_at < 6.0, "the partitioned leader still answers"
        stopped_after = time.monotonic() - cut_at
        # The majority goes on with m2.
        during = [await far.submit(add, i, 2) for i in range(20)]
        tasks = await far.wait_tasks([h.id for h in before + during], timeout=60)
        assert all(t.state.value == "succeeded" for t in tasks)
        assert await _holder(majority) == "m2"

        cluster.heal()
        after = [await far.submit(add, i, 3) for i in range(20)]
        tasks = await far.wait_tasks([h.id for h in after], timeout=60)
        assert [t.result for t in tasks] == [i + 3 for i in range(20)]
        assert masters["m1"].poll() is None, "the partitioned master exited"
        print(f"the partitioned leader stopped answering {stopped_after:.2f} s after the cut")
        await near.close()
        await far.close()
    finally:
        if stack is not None:
            await stack.close()
        for proc in masters.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
        await cluster.close()
