"""The awaited submit through the durable intake, against a real master, region and workers."""

from __future__ import annotations

import asyncio
from types import ModuleType

import msgspec
import pytest

import tierq
from tierq import BackpressureError, IntakeBehindError, NotFoundError, TaskFailedError
from tierq.core.ids import client_id
from tierq.core.model import TaskSpec, TaskState
from tierq.engine import IntakeStream, Subjects, connect
from tierq.master import intake as intake_module
from tierq.protocol import IntakeEntry, QueryKind, QueryRequest, TasksReply
from tierq.testing import LocalCluster

pytestmark = pytest.mark.integration


async def test_submit_is_one_publish_and_the_id_answers_at_once(
    cluster: LocalCluster, app: tierq.App, tasks_module: ModuleType
) -> None:
    await cluster.start_worker(tasks_module.__name__)
    handle = await app.submit(tasks_module.add, 2, 3)
    assert "-" in handle.id  # made by the client, not by the master
    # Read your writes: the master may not have applied it yet, and still knows it.
    assert (await app.get(handle.id)).id == handle.id
    assert await handle.result(timeout=20) == 5
    # What only the master can check at once still goes to it: an unknown parent is refused.
    with pytest.raises(tierq.InvalidRequestError, match="00000000000000000bad"):
        await app.submit(tasks_module.add, 1, 1, depends_on=["00000000000000000bad"])
    # A child of a task submitted through the intake is accepted and gets its result.
    child = await app.submit(tasks_module.add, {"$result": handle.id}, 1, depends_on=[handle])
    assert await child.result(timeout=20) == 6


async def test_entries_stored_while_no_master_runs_are_applied_when_one_starts(
    cluster: LocalCluster, app: tierq.App, tasks_module: ModuleType
) -> None:
    await cluster.start_worker(tasks_module.__name__)
    await (await app.submit(tasks_module.add, 0, 0)).result(timeout=20)
    await cluster.stop_master()
    # Acknowledged by the stream while nobody could have appended them to the log.
    handles = [await app.submit(tasks_module.add, i, 1) for i in range(50)]
    await cluster.start_master()
    results = await app.wait_tasks([h.id for h in handles], timeout=30)
    assert [t.result for t in results] == [i + 1 for i in range(50)]
    assert {t.state for t in results} == {TaskState.SUCCEEDED}


async def test_a_full_queue_refuses_before_publishing_and_a_raw_entry_after(
    small_cluster: LocalCluster, tasks_module: ModuleType
) -> None:
    """max_queued is 5 here. The SDK refuses the sixth before storing anything; an entry
    published by hand (as a client in another language would) is refused by the master and
    answers under its id as a DEAD task with the reason."""
    async with tierq.App(small_cluster.nats_url) as app:
        handles = [await app.submit(tasks_module.add, i, 1) for i in range(5)]
        with pytest.raises(BackpressureError) as info:
            await app.submit(tasks_module.add, 100, 1)
        assert info.value.retry_after >= 1.0
        engine = await connect(small_cluster.nats.for_role("client").connect_options(name="raw"))
        try:
            raw_id = client_id(1.8e9, "raw1")
            entry = IntakeEntry(id=raw_id, spec=TaskSpec(name=tasks_module.add.name, args=[1, 1]))
            await IntakeStream(engine, Subjects()).publish(
                msgspec.msgpack.encode(entry), raw_id, timeout=5
            )
        finally:
            await engine.close()
        refused = app.handle(raw_id)
        with pytest.raises(TaskFailedError, match="refused: the scheduler is full"):
            await refused.result(timeout=10)
        assert (await refused.status()).state is TaskState.DEAD
        with pytest.raises(NotFoundError):
            await app.get(client_id(1.8e9, "never"))
        await small_cluster.start_worker(tasks_module.__name__)
        await app.wait_tasks([h.id for h in handles], timeout=20)
        late = await app.submit(tasks_module.add, 100, 1)
        assert await late.result(timeout=20) == 101


async def test_a_silent_intake_follower_is_replaced(
    cluster: LocalCluster, app: tierq.App, tasks_module: ModuleType
) -> None:
    """The client library re-creates an ordered consumer itself, but only now and then, and
    a re-creation can fail (no stream leader in a cluster). The applier's watch replaces a
    follower that went silent while entries wait, so submissions are applied regardless."""
    await cluster.start_worker(tasks_module.__name__)
    await (await app.submit(tasks_module.add, 0, 0)).result(timeout=20)
    assert cluster.master is not None and cluster.master._intake is not None
    applier = cluster.master._intake
    assert applier._follower is not None
    await applier._follower.stop()  # silent from now on, as if the library had given up
    handles = [await app.submit(tasks_module.add, i, 1) for i in range(10)]
    results = await app.wait_tasks([h.id for h in handles], timeout=30)
    assert [t.result for t in results] == [i + 1 for i in range(10)]
    assert applier.refollowed == 1


async def test_a_submission_the_master_has_not_applied_is_not_called_missing(
    cluster: LocalCluster, app: tierq.App, tasks_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the follower is behind, a request naming a task stored in the intake gets
    IntakeBehindError (nothing done, resend later), never NotFoundError; the SDK resends it
    until the master has applied the task. (While it is behind, the master cannot tell an id
    nobody submitted from one it has not read yet: both get IntakeBehindError.)"""
    monkeypatch.setattr(intake_module, "CATCH_UP_WAIT", 0.3)
    await (await app.submit(tasks_module.add, 0, 0)).status()
    assert cluster.master is not None and cluster.master._intake is not None
    applier = cluster.master._intake
    assert applier._watch is not None and applier._follower is not None
    applier._watch.cancel()
    await applier._follower.stop()
    handle = await app.submit(tasks_module.add, 1, 1)
    master = await app.master()
    with pytest.raises(IntakeBehindError, match="has not applied yet"):
        await master.call(
            "query", QueryRequest(kind=QueryKind.TASK, id=handle.id), TasksReply, timeout=1.0
        )
    # Following again (as the watch does) and the SDK's ordinary call gets the task.
    waiting = asyncio.ensure_future(app.get(handle.id))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    await applier._refollow(0)
    assert (await waiting).id == handle.id
