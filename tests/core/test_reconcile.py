"""Assignments whose lease reply never reached the region are found and re-queued."""

from __future__ import annotations

import random

from tierq.core import SchedulerState, Settings
from tierq.core.model import RegionInfo, TaskSpec, TaskState
from tierq.core.reconcile import missing_attempts

REGION = RegionInfo(name="eu", instance="i1", task_types=("t",))


def _assigned_state(now: float) -> tuple[SchedulerState, list[str]]:
    state = SchedulerState(Settings(), random.Random(1))
    state.register_region(REGION, now)
    _, ids = state.submit([TaskSpec(name="t"), TaskSpec(name="t")], now)
    _, leased = state.lease("eu", "i1", 2, now)
    assert [t.id for t in leased] == ids
    return state, ids


def test_an_attempt_the_region_does_not_hold_is_lost_after_the_grace() -> None:
    state, (a, b) = _assigned_state(100.0)
    assert missing_attempts(state, "eu", "i1", {(a, 1)}, grace=5.0, now=103.0) == []
    lost = missing_attempts(state, "eu", "i1", {(a, 1)}, grace=5.0, now=106.0)
    assert [(o.task_id, o.attempt) for o in lost] == [(b, 1)]
    state.report(lost, 106.0)
    task = state.get(b)
    assert task.attempt == 2 and task.state in (TaskState.FAILED, TaskState.READY)
    assert state.get(a).state is TaskState.ASSIGNED


def test_another_instance_or_region_reports_nothing() -> None:
    state, _ = _assigned_state(100.0)
    assert missing_attempts(state, "eu", "other", set(), grace=5.0, now=200.0) == []
    assert missing_attempts(state, "us", "i1", set(), grace=5.0, now=200.0) == []
