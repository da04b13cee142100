"""A report that comes too late is counted as a duplicate, never applied (issue #11, item 6).

Master, region and worker are real processes. The worker is paused (SIGSTOP) past its lease
while it runs 8 attempts; the region declares them lost and the master re-queues them. When
the worker resumes it finishes the old attempts and reports them: the master must count
each as a duplicate report (the architecture's promise) and apply only the new attempts.
"""

from __future__ import annotations

import json
import os
import signal
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


async def test_reports_of_attempts_declared_lost_are_counted_as_duplicates(
    processes: Processes, client: tierq.App, tmp_path: Path
) -> None:
    processes.master()
    processes.region("--worker-lease", "2")
    worker = processes.worker(TASKS, concurrency=8)

    async def registered() -> bool:
        try:
            master = await client.master()
            reply = await master.query(QueryRequest(kind=QueryKind.WORKERS), WorkersReply)
        except tierq.TierqError:
            return False
        return len(reply.workers) == 1

    await until(registered, 60, "the worker is registered")
    ledger = tmp_path / "ran.jsonl"
    ids = [(await client.submit(rtasks.nap, 1.0, str(ledger), f"t{i}")).id for i in range(8)]
    await until(lambda: all_in(client, ids, TaskState.RUNNING), 30, "all 8 running")
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        # Past the 2 s lease: the region reports the 8 attempts lost, the master re-queues.
        await until(lambda: _all_attempt(client, ids, 2), 30, "the attempts declared lost")
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    # The worker finishes attempt 1 of each (late), registers again and runs attempt 2.
    await until(lambda: all_in(client, ids, TaskState.SUCCEEDED), 60, "all succeeded")
    await until(lambda: _duplicates(client, 8), 10, "8 late reports counted")
    runs = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert sorted(r["attempt"] for r in runs) == [1] * 8 + [2] * 8
    for task_id in ids:
        task = await client.get(task_id)
        assert task.attempt == 2 and task.history[0].error is not None
        assert task.history[0].error.lost
    counts = await totals(client)
    assert counts["succeeded"] == 8
    print(f"worker paused past its lease: duplicates {counts['duplicates']}")


async def _all_attempt(client: tierq.App, ids: list[str], attempt: int) -> bool:
    tasks = [await client.get(i) for i in ids]
    return all(t.attempt >= attempt for t in tasks)


async def _duplicates(client: tierq.App, n: int) -> bool:
    return (await totals(client))["duplicates"] >= n
