"""Tasks handed to a worker in a pull reply that never reached it go back (no stalled region).

A pull's reply is lost when the worker's connection drops as the region sends it (its NATS
server died: seen in the cluster node-loss test). The worker never runs those tasks; before,
the region kept counting them against the worker's slots, asked the master for nothing more,
and 18,000 queued tasks waited for good. Master and region are real processes; the "worker"
here speaks the protocol by hand: it pulls, drops what it got, and heartbeats with nothing.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import tierq
from tests.region import rtasks
from tests.region.conftest import TASKS, Processes, all_in, until
from tierq.core.model import TaskState
from tierq.engine import Engine, Subjects
from tierq.protocol import (
    PullReply,
    PullRequest,
    QueryKind,
    QueryRequest,
    RegionsReply,
    RegisterWorkerReply,
    RegisterWorkerRequest,
    WorkerHeartbeat,
    WorkerHeartbeatReply,
    decode_reply,
    encode,
)
from tierq.region.workers import HANDOUT_GRACE

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(120)]

SUBJECTS = Subjects()


async def _ask(engine: Engine, op: str, request: object, reply: type[object]) -> object:
    data = await engine.request(SUBJECTS.region("default", op), encode(request), timeout=10)
    return decode_reply(data, reply)


async def test_tasks_whose_hand_out_never_arrived_go_back(
    processes: Processes, client: tierq.App, worker_engine: Engine, tmp_path: Path
) -> None:
    processes.master()
    processes.region()

    async def region_up() -> bool:
        try:
            master = await client.master()
            reply = await master.query(QueryRequest(kind=QueryKind.REGIONS), RegionsReply)
        except tierq.TierqError:
            return False
        return any(r.name == "default" for r in reply.regions)

    await until(region_up, 60, "the region registered")
    ghost = "ghost-worker"
    register = RegisterWorkerRequest(worker=ghost, task_types=["r.record"], concurrency=3)
    assert isinstance(await _ask(worker_engine, "register", register, RegisterWorkerReply), object)
    ledger = tmp_path / "ran.jsonl"
    ids = [(await client.submit(rtasks.record, str(ledger), f"t{i}")).id for i in range(3)]
    pulled: list[str] = []
    while len(pulled) < 3:  # the region leases them for the ghost's free slots
        reply = await _ask(
            worker_engine, "pull", PullRequest(worker=ghost, slots=3, wait=5), PullReply
        )
        assert isinstance(reply, PullReply)
        pulled += [t.id for t in reply.tasks]
    assert sorted(pulled) == sorted(ids)
    # The ghost never got them (as if the reply were lost): it lists nothing, twice over.
    beat = WorkerHeartbeat(worker=ghost, running=[])
    await _ask(worker_engine, "heartbeat", beat, WorkerHeartbeatReply)
    await asyncio.sleep(HANDOUT_GRACE + 0.2)  # the scenario: time passes for the grace
    await _ask(worker_engine, "heartbeat", beat, WorkerHeartbeatReply)

    async def requeued() -> bool:
        tasks = [await client.get(i) for i in ids]
        return all(t.attempt == 2 for t in tasks)

    # While the ghost still has 3 free slots, keep it honest about having nothing.
    async def heartbeat_until_requeued() -> bool:
        await _ask(worker_engine, "heartbeat", beat, WorkerHeartbeatReply)
        return await requeued()

    await until(heartbeat_until_requeued, 20, "the lost hand-outs re-queued", every=0.3)
    processes.worker(TASKS, concurrency=3)
    await until(lambda: all_in(client, ids, TaskState.SUCCEEDED), 60, "all ran")
    runs = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert sorted(r["attempt"] for r in runs) == [2, 2, 2]  # attempt 1 never ran
    for task_id in ids:
        first = (await client.get(task_id)).history[0]
        assert first.error is not None and first.error.lost
        assert "never received" in first.error.message


async def test_a_worker_running_its_attempts_keeps_them(
    processes: Processes, client: tierq.App, worker_engine: Engine, tmp_path: Path
) -> None:
    """The same ghost, listing what it was handed, keeps it past the grace."""
    processes.master()
    processes.region()
    ghost = "honest-ghost"
    register = RegisterWorkerRequest(worker=ghost, task_types=["r.record"], concurrency=2)
    await until(lambda: _registers(worker_engine, register), 60, "the region is up")
    ids = [(await client.submit(rtasks.record, str(tmp_path / "x"), f"t{i}")).id for i in range(2)]
    got: list[tuple[str, int]] = []
    while len(got) < 2:
        reply = await _ask(
            worker_engine, "pull", PullRequest(worker=ghost, slots=2, wait=5), PullReply
        )
        assert isinstance(reply, PullReply)
        got += [(t.id, t.attempt) for t in reply.tasks]
    beat = WorkerHeartbeat(worker=ghost, running=got)
    for _ in range(3):
        await _ask(worker_engine, "heartbeat", beat, WorkerHeartbeatReply)
        await asyncio.sleep(HANDOUT_GRACE / 2 + 0.1)
    tasks = [await client.get(i) for i in ids]
    assert all(t.attempt == 1 and t.state is TaskState.RUNNING for t in tasks), tasks


async def _registers(engine: Engine, request: RegisterWorkerRequest) -> bool:
    try:
        await _ask(engine, "register", request, RegisterWorkerReply)
    except tierq.TierqError:
        return False
    return True
