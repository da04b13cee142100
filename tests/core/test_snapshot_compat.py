"""A snapshot written by an earlier build restores here, and this build writes the same bytes.

``snapshot_v1.msgpack`` (schema 1: full ``Task`` records) was written by ``build_reference()``
on the code before the scheduler was split into modules; ``snapshot_v2.msgpack`` (schema 2: the
scheduler's ``LiveTask`` records) by the same function when the records were slimmed. They are
kept as files, not regenerated, so a change to the snapshot format (or to what a command
decides) shows up as a failure here rather than as a master that cannot restore after an
upgrade. Write a new one only on purpose, with a SCHEMA_VERSION bump, and keep the old ones:

    python -c "import sys; sys.path.insert(0, 'tests/core'); \
import test_snapshot_compat as t; t.write_fixture()"
"""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import pytest
from core_harness import T0, Harness, explain_difference

from tierq.core import (
    BreakerSettings,
    FailurePolicy,
    PriorityRule,
    RetryPolicy,
    SchedulerState,
    Settings,
    TaskSpec,
    TaskState,
    WorkflowNode,
    WorkflowSpec,
    snapshots,
)
from tierq.errors import InvalidRequestError

FIXTURE_V1 = Path(__file__).with_name("snapshot_v1.msgpack")
FIXTURE = Path(__file__).with_name("snapshot_v2.msgpack")
ONCE = RetryPolicy(max_attempts=1)


def build_reference() -> Harness:
    """A state touching every part of the snapshot: each task state, workflows (finished and
    running, with result references and an idempotency key), regions, breakers in every state,
    deadlines, rule boosts, idempotency keys, evicted tasks and queued tasks of several classes."""
    settings = Settings(
        breaker=BreakerSettings(window=4, min_samples=2, failure_rate=0.5, cooldown=30.0),
        priority_rules=(PriorityRule(task_name="b", min_queue_depth=1, boost=5),),
        retention_seconds=100.0,
    )
    h = Harness(settings)
    h.region("eu", types=("a", "b", "c", "d", "e"), labels=("gpu",))
    h.region("us", types=("a", "b"), instance="u1")
    old = h.submit(TaskSpec(name="c"))
    h.lease(1)
    h.succeed(old[0])
    h.tick(T0 + 1)
    h.now = T0 + 150
    h.region("eu", types=("a", "b", "c", "d", "e"), labels=("gpu",))
    h.region("us", types=("a", "b"), instance="u1")
    h.tick(T0 + 150)  # evicts the first task
    ids = h.submit(
        TaskSpec(name="a", priority=3, idempotency_key="k-1"),
        TaskSpec(name="a", resource="db:1", retry=ONCE),
        TaskSpec(name="a", resource="db:1", retry=ONCE),
        TaskSpec(name="b", labels=("gpu",), deadline=T0 + 10_000),
        TaskSpec(name="b", region="us", priority=-20),
        TaskSpec(name="c", run_at=T0 + 5_000),
        TaskSpec(name="c", retry=RetryPolicy(max_attempts=3, backoff_base=60.0)),
    )
    wf = WorkflowSpec(
        name="diamond",
        nodes=[
            WorkflowNode(key="x", spec=TaskSpec(name="d")),
            WorkflowNode(key="y", spec=TaskSpec(name="e", args=[{"$result": "x"}])),
            WorkflowNode(key="z", spec=TaskSpec(name="e", depends_on=("x", ids[0]))),
        ],
        edges=[("x", "y")],
        on_failure=FailurePolicy.CONTINUE,
        idempotency_key="wf-1",
    )
    evs, _, nodes = h.state.submit_workflow(wf, h.now)
    h.rec(evs)
    first = h.lease(20, region="us", instance="u1")
    leased = h.lease(3)
    for t in first[:2] + leased[:1]:
        h.fail(t.id)
    h.rec(h.state.reprioritize(ids[3], 42, h.now))
    h.rec(h.state.cancel(nodes["z"], h.now))
    h.tick(T0 + 200)
    h.tick(T0 + 9_500)  # the regions' leases expire: what they held is re-queued
    h.region("eu", types=("a", "b", "c", "d", "e"), labels=("gpu",))
    rest = h.lease(20)
    for t in rest:
        if t.name == "d":
            h.succeed(t.id, t.attempt, {"v": [1, 2.5, "s"]})
    return h


def write_fixture() -> None:
    FIXTURE.write_bytes(build_reference().state.snapshot())


def test_snapshot_restores_and_encodes_the_same() -> None:
    data = FIXTURE.read_bytes()
    restored = SchedulerState.restore(data, random.Random(0))
    again = restored.snapshot()
    assert again == data, explain_difference(again, data)
    counts = restored.statistics(T0).by_state
    assert {s.value for s in TaskState if counts[s.value]} >= {"ready", "succeeded", "cancelled"}


def test_schema_1_snapshot_restores_to_the_same_state() -> None:
    # The same state written with full Task records reads back into the records of schema 2.
    restored = SchedulerState.restore(FIXTURE_V1.read_bytes(), random.Random(0))
    again = restored.snapshot()
    stored = FIXTURE.read_bytes()
    assert again == stored, explain_difference(again, stored)


def test_unknown_schema_is_refused() -> None:
    data = FIXTURE.read_bytes()
    header = msgspec.msgpack.encode("schema_version") + msgspec.msgpack.encode(2)
    assert header in data
    newer = data.replace(header, msgspec.msgpack.encode("schema_version") + bytes([3]), 1)
    with pytest.raises(InvalidRequestError, match="schema version 3"):
        SchedulerState.restore(newer, random.Random(0))


def test_this_build_writes_the_fixture_bytes() -> None:
    h = build_reference()
    data = h.state.snapshot()
    stored = FIXTURE.read_bytes()
    assert data == stored, explain_difference(data, stored)
    h.check_replay()


@pytest.mark.parametrize("fixture", [FIXTURE, FIXTURE_V1], ids=["schema2", "schema1"])
def test_restored_fixture_keeps_deciding_like_the_live_state(fixture: Path) -> None:
    live = build_reference().state
    restored = SchedulerState.restore(fixture.read_bytes(), random.Random(7))
    now = T0 + 20_000
    assert live.lease("eu", "i1", 50, now) == restored.lease("eu", "i1", 50, now)
    assert live.tick(now) == restored.tick(now)
    assert live.snapshot() == restored.snapshot()


def test_tasks_in_several_chunks_restore_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    # A large snapshot holds its tasks in chunks, decoded one at a time on restore.
    monkeypatch.setattr(snapshots, "CHUNK", 3)
    h = build_reference()
    data = h.state.snapshot()
    chunks = msgspec.msgpack.decode(data)["tasks"]
    assert len(chunks) > 2 and all(1 <= len(c) <= 3 for c in chunks)
    restored = SchedulerState.restore(data, random.Random(0))
    assert restored.snapshot() == data
    now = T0 + 20_000
    assert h.state.lease("eu", "i1", 50, now) == restored.lease("eu", "i1", 50, now)
