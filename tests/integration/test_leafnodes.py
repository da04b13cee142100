"""Regions behind NATS leaf nodes: local traffic stays local, a cut link costs only a lease.

A hub nats-server (JetStream: the log, the intake) with the master; two leaf nodes, each with
a region and its worker, joined to the hub (leaf ``a`` through a TCP proxy that can cut the
link; the hub does not advertise its leaf port, so the leaf cannot go round the proxy). The
master and the client talk to the hub; each region and its worker only to their leaf. These
servers run without users: per-role users across a leaf link are not covered here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import tierq
from tests.chaos.proxy import Proxy
from tests.integration.itasks import add, nap
from tierq.core import Settings, TaskSpec
from tierq.engine import EmbeddedNats
from tierq.testing import LocalCluster, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

TASKS = "tests.integration.itasks"
LEASE = 4.0
#: How long leaf a's link stays cut.
CUT_FOR = 30.0


def _leaf(tmp: Path, name: str, hub_leaf_port: int) -> EmbeddedNats:
    # Its own JetStream domain: the hub's streams are the only ones tierq uses.
    return EmbeddedNats(
        tmp / name,
        server_name=name,
        extra_config=(
            f'leafnodes {{ remotes: [ {{ url: "nats-leaf://127.0.0.1:{hub_leaf_port}" }} ] }}\n'
            f'jetstream {{ domain: "{name}" }}'
        ),
    )


@pytest.fixture
async def sites(tmp_path: Path) -> AsyncIterator[dict[str, object]]:
    leaf_port = free_port()
    hub = EmbeddedNats(
        tmp_path / "hub",
        server_name="hub",
        extra_config=f'leafnodes {{ listen: "127.0.0.1:{leaf_port}", no_advertise: true }}',
    )
    await hub.astart()
    proxy = await Proxy(leaf_port).start()
    leaf_a = _leaf(tmp_path, "leaf-a", proxy.port)
    leaf_b = _leaf(tmp_path, "leaf-b", leaf_port)
    await leaf_a.astart()
    await leaf_b.astart()
    settings = Settings(region_lease_seconds=LEASE)
    core = LocalCluster(hub.url, settings=settings)
    a = LocalCluster(leaf_a.url, region="a", heartbeat_interval=0.3)
    b = LocalCluster(leaf_b.url, region="b", heartbeat_interval=0.3)
    try:
        await core.start_master()
        await _wait_leaf_links(hub, 2)
        for site in (a, b):
            await site.start_region()
            await site.start_worker(TASKS, concurrency=4)
        yield {"hub": hub, "proxy": proxy, "core": core, "a": a, "b": b}
    finally:
        for site in (a, b, core):
            await site.close()
        await proxy.close()
        for server in (leaf_a, leaf_b, hub):
            await server.astop()


async def _wait_leaf_links(hub: EmbeddedNats, n: int, timeout: float = 20.0) -> None:
    """Until the hub reports ``n`` leaf connections (its monitoring endpoint)."""
    import json
    import urllib.request

    url = f"http://{hub.host}:{hub.monitor_port}/leafz"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=2).read())
        if json.loads(body).get("leafnodes", 0) >= n:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {n} leaf links after {timeout} s")


async def test_regions_on_leaf_nodes_and_a_cut_link(sites: dict[str, object]) -> None:
    hub = sites["hub"]
    proxy = sites["proxy"]
    assert isinstance(hub, EmbeddedNats) and isinstance(proxy, Proxy)
    async with tierq.App(hub.url) as app:
        # Placed by region: each region's own worker, reached over its own leaf, runs them.
        for region in ("a", "b"):
            specs = [TaskSpec(name=add.name, args=[i, 1], region=region) for i in range(5)]
            handles = await app.submit_many(specs)
            tasks = await app.wait_tasks([h.id for h in handles], timeout=30)
            assert [t.result for t in tasks] == [i + 1 for i in range(5)]
            assert {t.region for t in tasks} == {region}
        # Cut leaf a off while its region holds running tasks, for longer than its lease:
        # what it held comes back and runs in b; nothing acknowledged is lost.
        naps = await app.submit_many([nap.spec(1.5) for _ in range(8)])
        on_a: list[str] = []
        for _ in range(100):
            tasks = await app.get_many([h.id for h in naps])
            on_a = [t.id for t in tasks if t.region == "a" and t.state.value == "running"]
            if on_a:
                break
            await asyncio.sleep(0.05)
        assert on_a, "region a never ran one of the tasks"
        proxy.cut()
        cut_at = asyncio.get_running_loop().time()
        more = [await app.submit(add, i, 1) for i in range(20)]
        results = await app.wait_tasks([h.id for h in more], timeout=LEASE + 60)
        assert [t.result for t in results] == [i + 1 for i in range(20)]
        done = await app.wait_tasks([h.id for h in naps], timeout=LEASE + 60)
        assert {t.state.value for t in done} == {"succeeded"}
        moved = [t for t in done if t.id in on_a]
        assert all(t.region == "b" and t.attempt == 2 for t in moved), moved
        # The link stays down 30 s in all, as a real outage might.
        await asyncio.sleep(max(0.0, cut_at + CUT_FOR - asyncio.get_running_loop().time()))
        proxy.heal()
        # Leaf a rejoins: its region registers again and runs its own work.
        await _wait_leaf_links(hub, 2, timeout=30)
        (again,) = await app.submit_many([TaskSpec(name=add.name, args=[2, 2], region="a")])
        assert await again.result(timeout=60) == 4
        assert (await again.status()).region == "a"
