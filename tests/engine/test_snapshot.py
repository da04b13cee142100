from __future__ import annotations

import os

from tierq.engine import Engine, SnapshotStore


async def test_empty(engine: Engine) -> None:
    assert await SnapshotStore(engine).latest() is None


async def test_large_snapshot_round_trip_and_retention(engine: Engine) -> None:
    store = SnapshotStore(engine, keep=2)
    big = os.urandom(20 * 1024 * 1024)
    await store.put(100, big)
    assert await store.latest() == (100, big)
    await store.put(200, b"second")
    await store.put(300, b"third")
    assert await store.sequences() == [200, 300]
    assert await SnapshotStore(engine).latest() == (300, b"third")


async def test_latest_is_by_sequence_not_by_write_order(engine: Engine) -> None:
    store = SnapshotStore(engine, keep=5)
    await store.put(50, b"fifty")
    await store.put(7, b"seven")
    assert await store.latest() == (50, b"fifty")
