"""A dead worker's attempts are re-queued in seconds, a paused one keeps them (issue #11, 4).

Master, region and workers are real processes with the default settings (worker lease 10 s,
heartbeat 1 s). A silent worker is probed on its own inbox: NATS answering "no responders"
means its connection is gone. A SIGKILLed worker's attempt must be re-queued in < 3 s; a
worker that is only paused (SIGSTOP, its connection alive) must keep its attempt.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest

import tierq
from tests.region import rtasks
from tests.region.conftest import TASKS, Processes, all_in, totals, until
from tierq.core.model import TaskState
from tierq.protocol import QueryKind, QueryRequest, WorkersReply

#: Several real processes start per test; a loaded 2-core machine needs more than 60 s.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.chaos,
    pytest.mark.timeout(180),
]

#: The issue's target with default settings; measured figures are in docs/reliability.md.
REQUEUE_BOUND = 3.0


async def _workers(client: tierq.App) -> int:
    try:
        master = await client.master()
        reply = await master.query(QueryRequest(kind=QueryKind.WORKERS), WorkersReply)
    except tierq.TierqError:
        return -1
    return len(reply.workers)


async def _start(processes: Processes, client: tierq.App) -> None:
    processes.master()
    processes.region()


async def test_a_killed_workers_attempt_is_requeued_in_under_3_seconds(
    processes: Processes, client: tierq.App, tmp_path: Path
) -> None:
    await _start(processes, client)
    doomed = processes.worker(TASKS, concurrency=2)

    async def workers(n: int) -> bool:
        return await _workers(client) == n

    await until(lambda: workers(1), 60, "first worker registered")
    ledger = tmp_path / "ran.jsonl"
    handle = await client.submit(rtasks.nap, 4.0, str(ledger), "long")
    await until(lambda: all_in(client, [handle.id], TaskState.RUNNING), 30, "running")
    survivor = processes.worker(TASKS, concurrency=2)
    await until(lambda: workers(2), 60, "second worker registered")
    os.kill(doomed.pid, signal.SIGKILL)
    killed = time.monotonic()

    async def requeued() -> bool:
        return (await client.get(handle.id)).attempt >= 2

    await until(requeued, 30, "the attempt re-queued")
    took = time.monotonic() - killed
    print(f"SIGKILLed worker: attempt re-queued {took:.2f} s after the kill")
    assert took < REQUEUE_BOUND
    assert await handle.result(timeout=30) == "long"
    task = await handle.status()
    assert task.attempt == 2 and task.history[0].error is not None
    assert task.history[0].error.lost
    runs = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert [(r["attempt"], r["pid"]) for r in runs] == [(2, survivor.pid)]
    counts = await totals(client)
    print(f"SIGKILLed worker: duplicates {counts['duplicates']}")


async def test_a_paused_worker_keeps_its_attempt(
    processes: Processes, client: tierq.App, tmp_path: Path
) -> None:
    await _start(processes, client)
    paused = processes.worker(TASKS, concurrency=2)

    async def one() -> bool:
        return await _workers(client) == 1

    await until(one, 60, "worker registered")
    ledger = tmp_path / "ran.jsonl"
    handle = await client.submit(rtasks.nap, 1.0, str(ledger), "paused")
    await until(lambda: all_in(client, [handle.id], TaskState.RUNNING), 30, "running")
    os.kill(paused.pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(5.0)  # silent for 5 heartbeats, within its 10 s lease
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    assert await handle.result(timeout=30) == "paused"
    task = await handle.status()
    assert task.attempt == 1, task.history
    print("worker paused 5 s within its lease: kept its attempt (0 false alarms)")


async def test_a_killed_regions_tasks_come_back_within_its_lease_bound(
    processes: Processes, client: tierq.App, tmp_path: Path
) -> None:
    """The stated bound (docs/reliability.md): a SIGKILLed region's held tasks are re-queued
    between 0.85 and 1.0 region lease (10 s by default) after it died, plus the tick."""
    processes.master()
    doomed = processes.region("--name", "eu")
    processes.worker(TASKS, concurrency=2, extra=("--region", "eu"))

    async def workers(n: int) -> bool:
        return await _workers(client) == n

    await until(lambda: workers(1), 60, "region eu's worker registered")
    ledger = tmp_path / "ran.jsonl"
    handle = await client.submit(rtasks.nap, 12.0, str(ledger), "held")
    await until(lambda: all_in(client, [handle.id], TaskState.RUNNING), 30, "running in eu")
    processes.region()
    processes.worker(TASKS, concurrency=2)
    await until(lambda: workers(2), 60, "region default's worker registered")
    await asyncio.sleep(2.0)  # several renewals of region eu since its registration
    os.kill(doomed.pid, signal.SIGKILL)
    killed = time.monotonic()

    async def requeued() -> bool:
        return (await client.get(handle.id)).attempt >= 2

    await until(requeued, 30, "region eu's task re-queued")
    took = time.monotonic() - killed
    print(f"SIGKILLed region: its task re-queued {took:.2f} s after the kill (lease 10 s)")
    assert 0.85 * 10.0 - 0.3 <= took <= 10.0 + 1.5
    task = await handle.status()
    assert task.history[0].error is not None and task.history[0].error.lost
    assert "lease expired" in task.history[0].error.message
