"""A region behind a leaf node, with NATS users per role on the hub, on the leaf and on the link.

The hub runs every role's user (``tierq nats-users``); the leaf serving region ``a`` is
configured with ``leaf_config`` (what ``tierq nats-users --leaf a --hub URL`` prints): only
region ``a``'s region and worker users locally, and the link to the hub as region ``a``'s
``leaf`` user. Work placed in ``a`` runs there and a cancellation from the hub reaches it. A
third local user on the leaf with the API's permissions still reaches nothing of the master's
beyond what the region and worker may: the link's user bounds what crosses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import tierq
from tests.integration.itasks import add, nap
from tests.integration.test_leafnodes import _wait_leaf_links
from tierq.config import NatsConfig
from tierq.core import TaskSpec
from tierq.engine import (
    EmbeddedNats,
    NatsUser,
    NatsUsers,
    authorization_config,
    connect,
    leaf_config,
)
from tierq.errors import NoRespondersError
from tierq.testing import LocalCluster, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TASKS = "tests.integration.itasks"


@pytest.fixture
async def secured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[dict[str, object]]:
    users = NatsUsers.generate("tierq", regions=("a",))
    credentials = tmp_path / "credentials.json"
    users.save(credentials)
    monkeypatch.setenv("TIERQ_NATS_CREDENTIALS", str(credentials))
    leaf_port = free_port()
    hub = EmbeddedNats(
        tmp_path / "hub",
        server_name="hub",
        users=users,
        extra_config=f'leafnodes {{ listen: "127.0.0.1:{leaf_port}", no_advertise: true }}',
    )
    # The leaf as leaf_config writes it, plus a local operator with the API's permissions.
    ops = NatsUser(role="api", user="leaf-ops", password="ops-secret-1")
    local = tuple(u for u in users.users if u.region == "a" and u.role != "leaf")
    config = leaf_config(users, "a", f"nats-leaf://127.0.0.1:{leaf_port}")
    remote = config[config.index("leafnodes {") :]
    leaf = EmbeddedNats(
        tmp_path / "leaf-a",
        server_name="leaf-a",
        extra_config=authorization_config(NatsUsers(users=(*local, ops)))
        + remote
        + 'jetstream { domain: "leaf-a" }\n',
    )
    await hub.astart()
    await leaf.astart()
    core = LocalCluster(hub.url, credentials=credentials)
    site = LocalCluster(leaf.url, region="a", heartbeat_interval=0.3, credentials=credentials)
    try:
        await core.start_master()
        await _wait_leaf_links(hub, 1)
        await site.start_region()
        await site.start_worker(TASKS, concurrency=4)
        yield {"hub": hub, "leaf": leaf, "ops": ops}
    finally:
        for cluster in (site, core):
            await cluster.close()
        for server in (leaf, hub):
            await server.astop()


async def test_a_leaf_region_with_users_on_both_sides(secured: dict[str, object]) -> None:
    hub, leaf, ops = secured["hub"], secured["leaf"], secured["ops"]
    assert isinstance(hub, EmbeddedNats) and isinstance(leaf, EmbeddedNats)
    assert isinstance(ops, NatsUser)
    async with tierq.App(hub.url) as app:  # the client user, from the credentials file
        specs = [TaskSpec(name=add.name, args=[i, 1], region="a") for i in range(5)]
        handles = await app.submit_many(specs)
        tasks = await app.wait_tasks([h.id for h in handles], timeout=30)
        assert [t.result for t in tasks] == [i + 1 for i in range(5)]
        assert {t.region for t in tasks} == {"a"}
        # A cancellation on the hub crosses the link to the running attempt.
        (long,) = await app.submit_many([TaskSpec(name=nap.name, args=[30], region="a")])
        for _ in range(200):
            if (await long.status()).state.value == "running":
                break
            await asyncio.sleep(0.05)
        await long.cancel()
        assert (await app.wait_tasks([long.id], timeout=20))[0].state.value == "cancelled"

    # The leaf's own operator may publish master.settings locally, but the link's user may
    # not carry it: on the leaf nobody answers. On the hub the API's user is answered.
    on_leaf = NatsConfig(servers=(leaf.url,), user=ops.user, password=ops.password)
    engine = await connect(on_leaf.connect_options(name="leaf-ops"))
    try:
        with pytest.raises(NoRespondersError):
            await engine.request("tierq.master.settings", b"\x80", timeout=5)
    finally:
        await engine.close()
    engine = await connect(
        NatsConfig.from_env(servers=hub.url).for_role("api").connect_options(name="hub-api")
    )
    try:
        assert await engine.request("tierq.master.settings", b"\x80", timeout=5)
    finally:
        await engine.close()
