"""The event feed over a real JetStream stream: live, resumed, filtered, never missing one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import pytest

from tierq.api.feed import EventFeed, EventFilter, FeedEvent
from tierq.engine import Engine, Subjects

SUBJECTS = Subjects("tierq")


@pytest.fixture
async def stream(engine: Engine) -> AsyncIterator[str]:
    """The events stream as the master provisions it (created here, in memory)."""
    name = "TIERQ_EVENTS"
    config = {"name": name, "subjects": [SUBJECTS.events_all], "storage": "memory"}
    reply = json.loads(
        await engine.request(f"$JS.API.STREAM.CREATE.{name}", json.dumps(config).encode())
    )
    assert "error" not in reply, reply
    yield name


@pytest.fixture
async def feed_engine(connect_as: Callable[..., Awaitable[Engine]]) -> Engine:
    """The API's side: the feed reads the stream as the API's NATS user."""
    return await connect_as("api")


async def publish(engine: Engine, kind: str, **fields: object) -> None:
    body = msgspec.json.encode({"kind": kind, "at": 1.0, **fields})
    await engine.request(SUBJECTS.event(kind), body)  # JetStream acks captured subjects


async def take(watch: object, n: int) -> list[FeedEvent]:
    from tierq.api.feed import Watch

    assert isinstance(watch, Watch)
    out = []
    for _ in range(n):
        event = await watch.next(10)
        assert event is not None, f"only {len(out)} of {n} events arrived"
        out.append(event)
    return out


async def consumers(engine: Engine, stream: str) -> int:
    info = json.loads(await engine.request(f"$JS.API.STREAM.INFO.{stream}", b""))
    count: int = info["state"]["consumer_count"]
    return count


async def test_live_events_carry_their_sequence(
    engine: Engine, feed_engine: Engine, stream: str
) -> None:
    await publish(engine, "task_ready", id="old", attempt=1)
    watch = await EventFeed(feed_engine, SUBJECTS).watch(EventFilter())
    try:
        await publish(engine, "task_ready", id="a", attempt=1)
        await publish(engine, "task_succeeded", id="a", attempt=1)
        events = await take(watch, 2)
        assert [e.kind for e in events] == ["task_ready", "task_succeeded"]
        assert [e.sequence for e in events] == [2, 3]
        assert json.loads(events[1].data)["id"] == "a"
    finally:
        await watch.aclose()
    assert await consumers(engine, stream) == 0


async def test_resume_after_a_sequence(engine: Engine, feed_engine: Engine, stream: str) -> None:
    for i in range(5):
        await publish(engine, "task_ready", id=f"t{i}", attempt=1)
    watch = await EventFeed(feed_engine, SUBJECTS).watch(EventFilter(), after=2)
    try:
        assert [e.sequence for e in await take(watch, 3)] == [3, 4, 5]
        assert await watch.next(0.2) is None
    finally:
        await watch.aclose()


async def test_last_replays_the_end_of_the_stream_then_goes_live(
    engine: Engine, feed_engine: Engine, stream: str
) -> None:
    for i in range(6):
        await publish(engine, "task_ready", id=f"t{i}", attempt=1)
    feed = EventFeed(feed_engine, SUBJECTS)
    assert await feed.last_sequence() == 6
    watch = await feed.watch(EventFilter(), last=3)
    try:
        replayed = await take(watch, 3)
        assert [e.sequence for e in replayed] == [4, 5, 6]
        assert [json.loads(e.data)["id"] for e in replayed] == ["t3", "t4", "t5"]
        assert await watch.next(0.2) is None
        await publish(engine, "task_succeeded", id="t5", attempt=1)
        assert [e.sequence for e in await take(watch, 1)] == [7]
    finally:
        await watch.aclose()
    # More than the stream holds: all of it; a resume point wins over ``last``.
    watch = await feed.watch(EventFilter(kinds=["task_succeeded"]), last=100)
    try:
        assert [e.sequence for e in await take(watch, 1)] == [7]
    finally:
        await watch.aclose()
    watch = await feed.watch(EventFilter(), after=6, last=100)
    try:
        assert [e.sequence for e in await take(watch, 1)] == [7]
    finally:
        await watch.aclose()


async def test_last_on_an_empty_stream_is_live(
    engine: Engine, feed_engine: Engine, stream: str
) -> None:
    feed = EventFeed(feed_engine, SUBJECTS)
    assert await feed.last_sequence() == 0
    watch = await feed.watch(EventFilter(), last=10)
    try:
        await publish(engine, "task_ready", id="a", attempt=1)
        assert [e.sequence for e in await take(watch, 1)] == [1]
    finally:
        await watch.aclose()


async def test_kinds_filter_on_the_server(engine: Engine, feed_engine: Engine, stream: str) -> None:
    watch = await EventFeed(feed_engine, SUBJECTS).watch(
        EventFilter(kinds=["task_succeeded", "task_dead"]), after=0
    )
    try:
        await publish(engine, "task_ready", id="a", attempt=1)
        await publish(engine, "task_succeeded", id="a", attempt=1)
        await publish(engine, "task_ready", id="b", attempt=1)
        await publish(engine, "task_dead", id="b", attempt=1, reason="x")
        assert [e.kind for e in await take(watch, 2)] == ["task_succeeded", "task_dead"]
    finally:
        await watch.aclose()


async def test_a_slow_watcher_misses_nothing(
    engine: Engine, feed_engine: Engine, stream: str
) -> None:
    """Far more events than a watcher buffers: it restarts behind itself, in order."""
    watch = await EventFeed(feed_engine, SUBJECTS).watch(EventFilter(), after=0)
    try:
        total = 3000
        for i in range(total):
            await engine.publish(
                SUBJECTS.event("task_ready"),
                msgspec.json.encode({"kind": "task_ready", "at": 1.0, "id": f"t{i}"}),
            )
        await engine.flush()
        sequences = [e.sequence for e in await take(watch, total)]
        assert sequences == list(range(1, total + 1))
    finally:
        await watch.aclose()


async def test_without_the_stream_the_feed_is_live_only(
    engine: Engine, feed_engine: Engine
) -> None:
    watch = await EventFeed(feed_engine, SUBJECTS).watch(EventFilter(kinds=["task_ready"]), after=5)
    try:
        assert not watch.resumable
        await engine.flush()
        await publish_plain(engine, "task_started", id="a")
        await publish_plain(engine, "task_ready", id="a")
        event = await watch.next(10)
        assert event is not None and (event.sequence, event.kind) == (0, "task_ready")
    finally:
        await watch.aclose()


async def publish_plain(engine: Engine, kind: str, **fields: object) -> None:
    await engine.publish(SUBJECTS.event(kind), msgspec.json.encode({"kind": kind, **fields}))
    await engine.flush()


def ev(kind: str, **fields: object) -> bytes:
    return msgspec.json.encode({"kind": kind, "at": 0.0, **fields})


def test_task_filter() -> None:
    f = EventFilter(task_id="t1")
    assert f.matches(ev("task_ready", id="t1", attempt=1))
    assert not f.matches(ev("task_ready", id="t2", attempt=1))
    assert not f.matches(ev("workflow_submitted", id="t1"))
    assert f.matches(ev("tasks_evicted", ids=["t0", "t1"]))


def test_workflow_filter_learns_its_tasks() -> None:
    f = EventFilter(workflow_id="wf_1")
    f.workflow_tasks.add("seeded")
    assert f.matches(ev("workflow_submitted", id="wf_1"))
    assert f.matches(ev("task_ready", id="seeded"))
    assert not f.matches(ev("task_ready", id="t9"))
    assert f.matches(ev("task_submitted", id="t9", workflow_id="wf_1"))
    assert f.matches(ev("task_succeeded", id="t9"))
    assert not f.matches(ev("workflow_finished", id="wf_2", state="succeeded"))


def test_task_and_workflow_filters_match_a_lease_of_several_tasks() -> None:
    lease = ev("tasks_assigned", region="eu", ids=["t0", "t1", "t2"], attempts=[1, 2, 1])
    assert EventFilter(task_id="t1").matches(lease)
    assert not EventFilter(task_id="t9").matches(lease)
    f = EventFilter(workflow_id="wf_1")
    assert not f.matches(lease)
    assert f.matches(ev("task_submitted", id="t2", workflow_id="wf_1"))
    assert f.matches(lease)
    seeded = EventFilter(workflow_id="wf_2", region="eu")
    seeded.workflow_tasks.add("t0")
    assert seeded.matches(lease)
    assert not seeded.matches(ev("tasks_assigned", region="us", ids=["t0"], attempts=[1]))
    assert not seeded.matches(ev("tasks_assigned", region="eu", ids=["t5"], attempts=[1]))


def test_region_filter() -> None:
    f = EventFilter(region="eu")
    assert f.matches(ev("task_assigned", id="t", attempt=1, region="eu"))
    assert not f.matches(ev("task_assigned", id="t", attempt=1, region="us"))
    assert f.matches(ev("region_heartbeat", name="eu", instance="i"))
    assert f.matches(ev("region_registered", info={"name": "eu", "instance": "i"}))
    assert not f.matches(ev("task_ready", id="t", attempt=1))


def test_unknown_kinds_are_refused() -> None:
    from tierq.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError) as info:
        EventFilter(kinds=["task_ready", "bogus.>"])
    assert info.value.field == "kinds[1]"
