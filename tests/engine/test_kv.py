from __future__ import annotations

import asyncio

import pytest
from nats.js.api import StorageType

from tierq.engine import Engine, LeaderLease, SettingsStore, Subjects, provision
from tierq.errors import FencedError

TTL = 1.5


async def test_acquire_renew_release(engine: Engine) -> None:
    a = await LeaderLease(engine, ttl=TTL).open()
    b = await LeaderLease(engine, ttl=TTL).open()
    assert await a.current_holder() is None
    assert await a.try_acquire("master-a")
    assert a.held and a.holder_id == "master-a"
    assert not await b.try_acquire("master-b")
    assert await b.current_holder() == "master-a"
    await a.renew()
    await a.renew()
    await a.release()
    assert not a.held
    assert await b.try_acquire("master-b")
    assert await a.current_holder() == "master-b"
    await a.release()  # not held: no-op
    assert await a.current_holder() == "master-b"


async def test_renewing_keeps_the_lease_past_ttl(engine: Engine) -> None:
    a = await LeaderLease(engine, ttl=TTL).open()
    b = await LeaderLease(engine, ttl=TTL).open()
    assert await a.try_acquire("a")
    for _ in range(5):  # 5 x ttl/3 > ttl
        await asyncio.sleep(TTL / 3)
        await a.renew()
        assert not await b.try_acquire("b")


async def test_expiry_then_takeover_then_old_holder_is_fenced(engine: Engine) -> None:
    a = await LeaderLease(engine, ttl=TTL).open()
    b = await LeaderLease(engine, ttl=TTL).open()
    assert await a.try_acquire("a")
    # a stops renewing (paused, partitioned); b waits and takes over once the key expires.
    await asyncio.wait_for(b.wait_acquire("b", poll_interval=0.1), timeout=TTL * 5)
    assert await b.current_holder() == "b"
    with pytest.raises(FencedError, match="lost"):
        await a.renew()
    assert not a.held
    with pytest.raises(FencedError):
        await a.renew()
    await b.renew()


async def test_settings_store(engine: Engine) -> None:
    store = SettingsStore(engine)
    assert await store.get() is None
    await store.put(b'{"max_pending":10}')
    await store.put(b'{"max_pending":20}')
    assert await store.get() == b'{"max_pending":20}'
    assert await SettingsStore(engine).get() == b'{"max_pending":20}'


async def test_provision_twice_and_concurrently(engine: Engine) -> None:
    # As the master's NATS user: its permissions must cover provisioning.
    subjects = Subjects()
    await asyncio.gather(*(provision(engine, subjects, lease_ttl=TTL) for _ in range(3)))
    await provision(engine, subjects, lease_ttl=TTL)
    names = {s.config.name for s in await engine.js.streams_info()}
    assert {"TIERQ_LOG", "KV_tierq_leader", "KV_tierq_settings", "OBJ_tierq_snapshots"} <= names


async def test_memory_profile(open_engine: Engine) -> None:
    engine = open_engine
    await provision(engine, Subjects("mem"), durable=False)
    info = await engine.js.stream_info("MEM_LOG")
    assert info.config.storage == StorageType.MEMORY
