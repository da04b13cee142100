"""Processes die mid-run; nothing accepted is lost and nothing succeeds twice."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import tierq
from tests.integration import itasks
from tests.integration.conftest import TASKS, ledger
from tierq.core.model import Task, TaskState
from tierq.testing import LocalCluster

pytestmark = pytest.mark.integration


async def test_worker_killed_mid_task_runs_elsewhere_as_attempt_2(
    cluster: LocalCluster, client: tierq.App, tmp_path: Path
) -> None:
    marker, attempts = tmp_path / "marker", tmp_path / "attempts.jsonl"
    first = cluster.spawn_worker(TASKS, concurrency=2)
    handle = await client.submit(itasks.die_first_time, str(marker), str(attempts))
    # The first attempt SIGKILLs its own worker; start the second worker only then, so the
    # retry has to run elsewhere.
    for _ in range(400):
        if first.poll() is not None:
            break
        await asyncio.sleep(0.025)
    assert first.returncode == -9
    second = cluster.spawn_worker(TASKS, concurrency=2)
    assert await handle.result(timeout=20) == 2
    task = await handle.status()
    assert task.attempt == 2
    assert task.history[0].error is not None and task.history[0].error.lost
    runs = [json.loads(line) for line in attempts.read_text().splitlines()]
    assert [r["attempt"] for r in runs] == [1, 2]
    assert runs[0]["pid"] == first.pid and runs[1]["pid"] == second.pid
    await ledger(client)


async def test_region_restarted_mid_run_loses_nothing(
    cluster: LocalCluster, client: tierq.App, tmp_path: Path
) -> None:
    order = tmp_path / "order.jsonl"
    await cluster.start_worker(TASKS, concurrency=4)
    slow = [await client.submit(itasks.nap, 0.3) for _ in range(8)]
    quick = [await client.submit(itasks.record, str(order), f"q{i}") for i in range(40)]
    await until_running(client, slow)
    await cluster.stop_region()
    await asyncio.sleep(0.5)  # how long the region stays down, not a wait for anything
    await cluster.start_region()
    for h in slow + quick:
        await h.result(timeout=30)
    seen = {json.loads(line)["label"] for line in order.read_text().splitlines()}
    assert seen == {f"q{i}" for i in range(40)}
    counts = await ledger(client)
    assert counts["succeeded"] == 48


async def until_running(client: tierq.App, handles: list[tierq.TaskHandle]) -> None:
    """Until one of ``handles`` runs (the master holds the state: polled, no event here)."""
    async with asyncio.timeout(20):
        while not [h for h in handles if (await h.status()).state is TaskState.RUNNING]:  # noqa: ASYNC110
            await asyncio.sleep(0.025)


async def test_master_killed_and_restarted_loses_nothing(
    cluster: LocalCluster, client: tierq.App, tmp_path: Path
) -> None:
    order = tmp_path / "order.jsonl"
    await cluster.start_worker(TASKS, concurrency=4)
    handles = [await client.submit(itasks.record, str(order), f"t{i}") for i in range(60)]
    handles += [await client.submit(itasks.nap, 0.2) for _ in range(10)]
    async with asyncio.timeout(20):  # mid-run: the first tasks have run
        while not (order.exists() and order.read_text()):  # noqa: ASYNC110 - a file, no event
            await asyncio.sleep(0.025)
    await cluster.stop_master(crash=True)
    await asyncio.sleep(0.3)  # how long no master runs, not a wait for anything
    await cluster.start_master()  # waits out the dead master's leader lease, then replays
    for h in handles:
        await h.result(timeout=30)
    tasks = [await h.status() for h in handles]
    assert all(t.state is TaskState.SUCCEEDED for t in tasks)
    seen = {json.loads(line)["label"] for line in order.read_text().splitlines()}
    assert seen == {f"t{i}" for i in range(60)}
    counts = await ledger(client)
    assert counts["submitted"] == 70 and counts["succeeded"] == 70


async def test_master_snapshot_and_replay_restore_the_same_state(
    nats_server: object, client: tierq.App, tmp_path: Path
) -> None:
    from tierq.testing import local_cluster

    url = nats_server.url  # type: ignore[attr-defined]
    async with local_cluster(url, snapshot_every=50) as cluster:
        await cluster.start_worker(TASKS, concurrency=4)
        handles = [await client.submit(itasks.add, i, i) for i in range(120)]
        for h in handles:
            await h.result(timeout=20)
        master = cluster.master
        assert master is not None
        before = [(t.id, t.state, t.result, t.attempt) for t in _all_tasks(master)]
        await cluster.stop_master()
        master = await cluster.start_master()
        assert master.recovered_from_snapshot > 0
        after = [(t.id, t.state, t.result, t.attempt) for t in _all_tasks(master)]
        assert after == before
        await ledger(client)


def _all_tasks(master: object) -> list[Task]:
    state = master.state  # type: ignore[attr-defined]
    tasks, cursor = state.list_tasks(limit=1000)
    assert cursor is None
    return list(tasks)


async def test_standby_master_takes_over_when_the_leader_dies(
    nats_server: object, client: tierq.App, tmp_path: Path
) -> None:
    from tests.integration.conftest import FAST_SETTINGS
    from tierq.config import MasterConfig
    from tierq.engine import connect
    from tierq.master import Master
    from tierq.testing import local_cluster

    url = nats_server.url  # type: ignore[attr-defined]
    order = tmp_path / "order.jsonl"
    async with local_cluster(
        url, settings=FAST_SETTINGS, leader_lease_seconds=1.0, worker_lease_seconds=1.5
    ) as cluster:
        nats = cluster.nats.for_role("master")
        engine = await connect(nats.connect_options(name="standby"))
        standby = Master(
            MasterConfig(nats=nats, holder="standby", leader_lease_seconds=1.0), engine
        )
        standby_task = asyncio.create_task(standby.run())
        try:
            await cluster.start_worker(TASKS, concurrency=4)
            handles = [await client.submit(itasks.record, str(order), f"s{i}") for i in range(30)]
            handles += [await client.submit(itasks.nap, 0.3) for _ in range(4)]
            assert not standby.ready.is_set()
            await cluster.stop_master(crash=True)  # its lease is not released: it expires
            await asyncio.wait_for(standby.ready.wait(), timeout=15)
            for h in handles:
                await h.result(timeout=30)
            seen = {json.loads(line)["label"] for line in order.read_text().splitlines()}
            assert seen == {f"s{i}" for i in range(30)}
            counts = await ledger(client)
            assert counts["succeeded"] == 34
        finally:
            standby.stop()
            await asyncio.wait_for(standby_task, timeout=10)
            await engine.close()
