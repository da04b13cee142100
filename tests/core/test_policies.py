"""Retry, breaker, admission, settings, states, ids, leases: the small pure parts."""

from __future__ import annotations

import random

import msgspec
import pytest

from tierq.core import (
    EVENT_KINDS,
    TRANSITIONS,
    AdmissionLevel,
    AdmissionSettings,
    BreakerSettings,
    BreakerState,
    CircuitBreaker,
    ErrorSummary,
    Event,
    IdGenerator,
    LeaseTable,
    PriorityRule,
    RetryPolicy,
    Settings,
    TaskReady,
    TaskState,
    WorkflowFinished,
    admission_level,
    backoff_delay,
    can_transition,
    check_admission,
    check_transition,
    event_kind,
    event_task_id,
    retry_decision,
)
from tierq.core.events import RegionHeartbeat
from tierq.errors import BackpressureError, InvalidRequestError, InvalidTransitionError


class Fixed:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(
    ("base", "cap", "jitter", "attempt", "draw", "expected"),
    [
        (1.0, 300.0, 0.0, 1, 0.5, 1.0),
        (1.0, 300.0, 0.0, 2, 0.5, 2.0),
        (1.0, 300.0, 0.0, 5, 0.5, 16.0),
        (1.0, 10.0, 0.0, 10, 0.5, 10.0),
        (2.0, 300.0, 0.5, 1, 1.0, 1.0),
        (2.0, 300.0, 0.5, 1, 0.0, 2.0),
        (0.0, 0.0, 0.2, 3, 0.9, 0.0),
        (1.0, 300.0, 0.0, 10_000, 0.5, 300.0),
    ],
)
def test_backoff(
    base: float, cap: float, jitter: float, attempt: int, draw: float, expected: float
) -> None:
    policy = RetryPolicy(backoff_base=base, backoff_max=cap, jitter=jitter)
    assert backoff_delay(policy, attempt, Fixed(draw)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("policy", "used", "error", "retries"),
    [
        (RetryPolicy(max_attempts=3), 1, ErrorSummary(type="E", message=""), True),
        (RetryPolicy(max_attempts=3), 3, ErrorSummary(type="E", message=""), False),
        (RetryPolicy(retry_on=("IOError",)), 1, ErrorSummary(type="IOError", message=""), True),
        (RetryPolicy(retry_on=("IOError",)), 1, ErrorSummary(type="KeyError", message=""), False),
        (
            RetryPolicy(retry_on=("IOError",)),
            1,
            ErrorSummary(type="Lost", message="", lost=True),
            True,
        ),
        (RetryPolicy(max_attempts=1), 1, ErrorSummary(type="Lost", message="", lost=True), False),
    ],
)
def test_retry_decision(policy: RetryPolicy, used: int, error: ErrorSummary, retries: bool) -> None:
    assert (retry_decision(policy, used, error) is None) is retries


def test_breaker_opens_on_failure_rate() -> None:
    s = BreakerSettings(window=10, min_samples=4, failure_rate=0.5, cooldown=5.0)
    b = CircuitBreaker("k", s.window)
    for failed in (True, False, True):
        b.record(failed)
        assert not b.should_open(s)  # below min_samples
    b.record(True)
    assert b.should_open(s)
    b.open(100.0)
    assert not b.allows()
    assert not b.cooled(104.9, s) and b.cooled(105.0, s)
    b.half_open()
    assert b.allows()
    b.probe = "t1"
    assert not b.allows()
    b.close()
    assert b.state is BreakerState.CLOSED and b.failures == 0 and len(b.window) == 0


def test_breaker_window_slides() -> None:
    b = CircuitBreaker("k", 3)
    for failed in (True, True, True, False, False, False):
        b.record(failed)
    assert b.failures == 0
    b.resize(2)
    assert len(b.window) == 2 and b.failures == 0


A = AdmissionSettings(max_queued=100, max_queued_per_queue=50, soft_watermark=0.8)


@pytest.mark.parametrize(
    ("waiting", "by_queue", "batch", "ok"),
    [
        (0, {}, {"q": (10, 0)}, True),
        (79, {}, {"q": (1, 0)}, True),
        (80, {}, {"q": (1, 0)}, False),  # soft: priority 0 < 1
        (80, {}, {"q": (1, 1)}, True),
        (99, {}, {"q": (1, 5)}, True),
        (100, {}, {"q": (1, 5)}, False),  # hard
        (0, {"q": 50}, {"q": (1, 5)}, False),  # per-queue hard
        (0, {"q": 40}, {"q": (1, 0)}, False),  # per-queue soft
        (0, {"q": 40}, {"r": (1, 0)}, True),
        (200, {}, {}, True),  # nothing to add
    ],
)
def test_admission(
    waiting: int, by_queue: dict[str, int], batch: dict[str, tuple[int, int]], ok: bool
) -> None:
    if ok:
        check_admission(A, waiting, by_queue, batch)
        return
    with pytest.raises(BackpressureError) as info:
        check_admission(A, waiting, by_queue, batch)
    assert A.retry_after_min <= info.value.retry_after <= A.retry_after_max


def test_admission_levels_and_retry_after_grow() -> None:
    assert admission_level(10, 100, A) is AdmissionLevel.OPEN
    assert admission_level(85, 100, A) is AdmissionLevel.SOFT
    assert admission_level(100, 100, A) is AdmissionLevel.HARD
    hints = []
    for waiting in (80, 90, 99):
        with pytest.raises(BackpressureError) as info:
            check_admission(A, waiting, {}, {"q": (1, 0)})
        hints.append(info.value.retry_after)
    assert hints == sorted(hints)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        (Settings(admission=AdmissionSettings(max_queued=0)), "admission.max_queued"),
        (
            Settings(admission=AdmissionSettings(soft_watermark=0.9, hard_watermark=0.5)),
            "admission.soft_watermark",
        ),
        (Settings(aging_rate=-1.0), "aging_rate"),
        (Settings(aging_rate=float("nan")), "aging_rate"),
        (Settings(breaker=BreakerSettings(window=5, min_samples=6)), "breaker.min_samples"),
        (Settings(breaker=BreakerSettings(failure_rate=0.0)), "breaker.failure_rate"),
        (Settings(region_lease_seconds=0.0), "region_lease_seconds"),
        (Settings(max_workflow_nodes=0), "max_workflow_nodes"),
        (
            Settings(priority_rules=(PriorityRule(task_name="", min_queue_depth=1, boost=1),)),
            "priority_rules[0]",
        ),
        (Settings(max_json_depth=10_000), "max_json_depth"),
    ],
)
def test_settings_validation(settings: Settings, field: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        settings.validate()
    assert info.value.field is not None and info.value.field.startswith(field)


def test_default_settings_are_valid_and_round_trip() -> None:
    s = Settings(priority_rules=(PriorityRule(task_name="a", min_queue_depth=10, boost=5),))
    assert s.validate() is s
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(s), type=Settings) == s


def test_transition_table() -> None:
    assert can_transition(TaskState.PENDING, TaskState.READY)
    assert not can_transition(TaskState.SUCCEEDED, TaskState.READY)
    for state in TaskState:
        assert state in TRANSITIONS
    with pytest.raises(InvalidTransitionError) as info:
        check_transition("t1", TaskState.SUCCEEDED, TaskState.RUNNING)
    assert info.value.ids == ("t1",)


def test_event_kinds_and_ids() -> None:
    assert len(EVENT_KINDS) == len(set(EVENT_KINDS)) >= 24
    ev = TaskReady(at=1.0, id="t1", attempt=2)
    assert event_kind(ev) == "task_ready" and event_task_id(ev) == "t1"
    assert event_task_id(WorkflowFinished(at=1.0, id="wf_1", state="succeeded")) is None
    assert event_task_id(RegionHeartbeat(at=1.0, name="eu", instance="i")) is None
    data = msgspec.msgpack.encode([ev])
    assert msgspec.msgpack.decode(data, type=list[Event]) == [ev]
    assert b"task_ready" in data


def test_ids_sort_by_creation_even_when_the_clock_steps_back() -> None:
    gen = IdGenerator()
    ids = [gen.next(t) for t in (100.0, 100.0, 99.0, 101.5, 50.0)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert gen.next(1.0, "wf_").startswith("wf_")
    other = IdGenerator()
    for ident in ids:
        other.observe(ident)
    assert other.next(0.0) > ids[-1]


def test_lease_table() -> None:
    t = LeaseTable()
    t.grant("w1", 0.0, 10.0)
    t.grant("w2", 0.0, 5.0)
    t.grant("w1", 4.0, 10.0)  # renewed
    assert t.next_expiry() == 5.0
    assert t.expired(5.0) == ["w2"]
    assert t.expired(13.9) == []
    assert t.expired(14.0) == ["w1"]
    assert len(t) == 0
    t.grant("w3", 0.0, 1.0)
    assert t.release("w3") and not t.release("w3")
    assert t.expired(100.0) == []


def test_random_source_protocol_accepts_random() -> None:
    assert 0.0 <= backoff_delay(RetryPolicy(), 3, random.Random(1)) <= 4.0
