"""LiveTask, the scheduler's record of a task: the cold fields made on first need."""

from __future__ import annotations

import random

from tierq.core import RegionInfo, SchedulerState, Settings, TaskSpec
from tierq.core.live import LiveTask, TaskExtra, from_task, to_task
from tierq.core.model import AttemptRecord, ErrorSummary, Task, TaskState

SPEC = TaskSpec(name="job")
T0 = 1_700_000_000.0


def record() -> LiveTask:
    return LiveTask(id="t1", spec=SPEC, state=TaskState.READY, submitted_at=T0)


def test_writing_defaults_makes_no_extra_record() -> None:
    rec = record()
    rec.region = None
    rec.boost = 0
    rec.progress = 0.0
    rec.parents = ()
    rec.timestamps = {}
    rec.history = []
    assert rec.extra is None
    assert (rec.region, rec.boost, rec.parents, rec.timestamps) == (None, 0, (), {})


def test_first_other_value_makes_the_extra_record_and_defaults_then_write_through() -> None:
    rec = record()
    rec.region = "eu"
    assert rec.extra is not None and rec.extra.region == "eu"
    rec.region = None
    assert rec.extra.region is None  # kept once made


def test_full_task_round_trip() -> None:
    task = Task(
        id="t2",
        spec=SPEC,
        state=TaskState.RUNNING,
        submitted_at=T0,
        attempt=2,
        workflow_id="wf_1",
        parents=("t0",),
        priority=5,
        region="eu",
        worker="w1",
        error=ErrorSummary(type="E", message="m"),
        progress=0.5,
        progress_message="half",
        not_before=T0 + 1,
        boost=3,
        retry_base=1,
        reason="r",
        timestamps={"ready": T0, "running": T0 + 2},
        history=[AttemptRecord(attempt=1, region="eu")],
    )
    rec = from_task(task)
    assert to_task(rec, task.timestamps, task.history) == task
    # Every field of Task is either on the record or in its extra.
    hot = set(LiveTask.__struct_fields__) - {"extra"}
    assert set(Task.__struct_fields__) == hot | set(TaskExtra.__struct_fields__)


def test_a_queued_task_has_no_extra_until_it_is_leased() -> None:
    state = SchedulerState(Settings(), random.Random(1))
    state.register_region(RegionInfo(name="eu", instance="i", task_types=("job",)), T0)
    _, ids = state.submit([SPEC, SPEC], T0)
    records = state._book.tasks
    assert [records[i].extra for i in ids] == [None, None]
    state.lease("eu", "i", 1, T0 + 1)
    first, second = (records[i] for i in ids)
    assert first.extra is not None and first.extra.region == "eu"
    assert second.extra is None
    # Queries return the full Task, the same as before.
    got = state.get(ids[0])
    assert type(got) is Task and got.region == "eu" and got.ready_key is None
    assert got.timestamps == {"ready": T0, "assigned": T0 + 1}
