"""Schedules in the pure core, with an injected clock: fire times as the master computes them
(``tierq.master.firetimes``, no I/O) handed to the core's commands, DST days, month ends, leap
days, every overlap policy, catch-up after downtime, replay and snapshots."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from core_harness import Harness

from tierq.core import (
    AdmissionSettings,
    ScheduleFired,
    SchedulerState,
    ScheduleSpec,
    Settings,
    TaskSpec,
    TaskState,
    TaskSubmitted,
)
from tierq.core.schedule_records import jitter_offset
from tierq.core.schedules import MAX_BACKFILL
from tierq.errors import ConflictError, InvalidRequestError
from tierq.master import firetimes
from tierq.master.schedule_ops import ScheduleHandlers, fire_due
from tierq.protocol import ScheduleRequest, encode


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make(h: Harness, sid: str, spec: ScheduleSpec, now: float) -> None:
    """What the master's schedule_create does: check the spec, compute the first fire."""
    firetimes.check_spec(spec)
    h.now = now
    h.rec(h.state.schedules.create(sid, spec, firetimes.next_after(spec, now), now))


def run(h: Harness, until: float, step: float = 60.0) -> list[ScheduleFired]:
    """Advance the clock to ``until`` in ``step``s, firing as the master's tick loop does."""
    fired: list[ScheduleFired] = []
    t = h.now
    while t < until:
        t = min(until, t + step)
        h.now = t
        evs = h.rec(h.state.tick(t) + fire_due(h.state, t))
        fired += [e for e in evs if isinstance(e, ScheduleFired)]
    return fired


def started(fired: list[ScheduleFired]) -> list[str]:
    return [iso(e.fire_time) for e in fired if e.outcome == "started"]


TASK = TaskSpec(name="a")


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        # Spring: 02:30 does not exist; it fires once, an hour after 01:30 winter time.
        ("Europe/Berlin", "2026-03-29", "2026-03-29T01:30:00Z"),
        # Autumn: 02:30 shows twice (CEST, then CET); it fires once, at the first.
        ("Europe/Berlin", "2026-10-25", "2026-10-25T00:30:00Z"),
        ("America/New_York", "2026-03-08", "2026-03-08T07:30:00Z"),
        # New York repeats 01:00-02:00, not 02:30: 02:30 EST, once.
        ("America/New_York", "2026-11-01", "2026-11-01T07:30:00Z"),
    ],
)
def test_a_daily_0230_job_fires_once_on_dst_change_days(zone: str, day: str, expected: str) -> None:
    h = Harness()
    spec = ScheduleSpec(cron="30 2 * * *", timezone=zone, task=TASK, overlap="allow_all")
    start = ts(f"{day}T00:00:00+00:00") - 86400
    make(h, "daily", spec, start)
    fired = run(h, start + 3 * 86400)
    days = started(fired)
    assert len(days) == 3, days
    assert days[1] == expected
    # The day before and after: 02:30 local, one day apart in wall time.
    assert all(d.endswith(":30:00Z") for d in days)
    assert h.replayed() == h.state


def test_month_ends_leap_days_names_aliases_and_seconds() -> None:
    def times(cron: str, start: str, n: int, zone: str = "UTC") -> list[str]:
        spec = ScheduleSpec(cron=cron, timezone=zone, task=TASK)
        return [iso(t) for t in firetimes.times_in(spec, ts(start), ts(start) + 4e8, n - 1)]

    # The 31st exists in 7 months of 12: April, June are passed over.
    assert times("0 12 31 * *", "2026-03-01T00:00:00+00:00", 3) == [
        "2026-03-31T12:00:00Z",
        "2026-05-31T12:00:00Z",
        "2026-07-31T12:00:00Z",
    ]
    # The last day of each month, February's in a leap year too.
    assert times("0 0 L * *", "2028-01-15T00:00:00+00:00", 3) == [
        "2028-01-31T00:00:00Z",
        "2028-02-29T00:00:00Z",
        "2028-03-31T00:00:00Z",
    ]
    # 29 February: only in leap years.
    assert times("0 6 29 FEB *", "2026-01-01T00:00:00+00:00", 2) == [
        "2028-02-29T06:00:00Z",
        "2032-02-29T06:00:00Z",
    ]
    # Named weekdays and months, in a zone: 09:00 Berlin on weekdays of March.
    assert times("0 9 * MAR MON-FRI", "2026-02-27T00:00:00+00:00", 2, "Europe/Berlin") == [
        "2026-03-02T08:00:00Z",
        "2026-03-03T08:00:00Z",
    ]
    assert times("@hourly", "2026-01-01T00:00:00+00:00", 2) == [
        "2026-01-01T00:00:00Z",
        "2026-01-01T01:00:00Z",
    ]
    assert times("@yearly", "2026-06-01T00:00:00+00:00", 1) == ["2027-01-01T00:00:00Z"]
    # Six fields: seconds first.
    assert times("*/20 * * * * *", "2026-01-01T00:00:01+00:00", 3) == [
        "2026-01-01T00:00:20Z",
        "2026-01-01T00:00:40Z",
        "2026-01-01T00:01:00Z",
    ]


def test_bad_specs_are_refused() -> None:
    for spec, field in [
        (ScheduleSpec(cron="61 * * * *", task=TASK), "cron"),
        (ScheduleSpec(cron="* * *", task=TASK), "cron"),
        (ScheduleSpec(cron="* * * * *", timezone="Mars/Olympus", task=TASK), "timezone"),
    ]:
        with pytest.raises(InvalidRequestError) as err:
            firetimes.check_spec(spec)
        assert err.value.field == field
    h = Harness()
    for spec in [
        ScheduleSpec(task=TASK),
        ScheduleSpec(cron="* * * * *", every=60, task=TASK),
        ScheduleSpec(every=60, offset=60, task=TASK),
        ScheduleSpec(every=60),
        ScheduleSpec(every=60, task=TaskSpec(name="a", idempotency_key="k")),
        ScheduleSpec(every=60, task=TASK, overlap="sometimes"),  # type: ignore[arg-type]
        ScheduleSpec(every=60, task=TASK, start_at=10, end_at=5),
    ]:
        with pytest.raises(InvalidRequestError):
            h.state.schedules.create("s", spec, 0.0, h.now)
    # Out of range, each refused naming its field: an interval under a second or over a
    # year, a jitter or catch-up window over a year, a time past the year 9999.
    for spec, field in [
        (ScheduleSpec(every=0.5, task=TASK), "every"),
        (ScheduleSpec(every=1e300, task=TASK), "every"),
        (ScheduleSpec(every=60, jitter=1e12, task=TASK), "jitter"),
        (ScheduleSpec(every=60, catchup_window=1e12, task=TASK), "catchup_window"),
        (ScheduleSpec(every=60, start_at=1e300, task=TASK), "start_at"),
        (ScheduleSpec(cron="* * * * *", end_at=float("inf"), task=TASK), "end_at"),
    ]:
        with pytest.raises(InvalidRequestError) as err:
            h.state.schedules.create("s", spec, 0.0, h.now)
        assert err.value.field == field, spec
    with pytest.raises(InvalidRequestError):
        h.state.schedules.create("no spaces", ScheduleSpec(every=60, task=TASK), 0.0, h.now)
    assert h.state.schedules.all() == []


@pytest.mark.parametrize(
    ("spec", "field", "says"),
    [
        # end_at already past: the schedule would never fire.
        (ScheduleSpec(every=60, end_at=5, task=TASK), "end_at", "1970-01-01T00:00:05"),
        # 30 February: croniter finds no date.
        (ScheduleSpec(cron="0 0 30 2 *", task=TASK), "cron", "no date matches"),
        # The only fire times lie past the year 9999.
        (ScheduleSpec(cron="0 0 1 1 *", start_at=253_402_300_000, task=TASK), "cron", "no fire"),
    ],
)
def test_a_schedule_that_would_never_fire_is_refused(
    spec: ScheduleSpec, field: str, says: str
) -> None:
    h = Harness()
    req = ScheduleRequest(id="never", spec=spec)
    with pytest.raises(InvalidRequestError) as err:
        ScheduleHandlers(lambda: h.state).create(encode(req), ts("2026-01-01T00:00:00+00:00"))
    assert err.value.field == field and says in str(err.value)
    assert not h.state.schedules.has("never")


def test_interval_offset_start_end_and_fire_time_arg() -> None:
    h = Harness()
    t0 = ts("2026-01-01T00:00:00+00:00")
    spec = ScheduleSpec(
        every=300,
        offset=30,
        start_at=t0 + 600,
        end_at=t0 + 1500,
        task=TASK,
        fire_time_arg="fired_for",
        overlap="allow_all",
    )
    make(h, "iv", spec, t0)
    fired = run(h, t0 + 3600, step=7)
    assert started(fired) == [
        "2026-01-01T00:10:30Z",
        "2026-01-01T00:15:30Z",
        "2026-01-01T00:20:30Z",
    ]
    subs = [e for e in h.events if isinstance(e, TaskSubmitted)]
    assert [e.spec.kwargs["fired_for"] for e in subs] == [f.fire_time for f in fired]
    assert h.state.schedules.get("iv").next_fire is None  # past end_at


def test_each_fire_time_fires_once_whatever_repeats() -> None:
    """A master that lists the same due times again (restart, failover, a deposed master's
    retry) fires nothing twice: the key is (schedule, fire time)."""
    h = Harness()
    t0 = ts("2026-01-01T00:00:00+00:00")
    make(h, "s", ScheduleSpec(every=60, task=TASK, overlap="allow_all"), t0)
    run(h, t0 + 600, step=13)
    rec = h.state.schedules.get("s")
    assert rec.fires == 10 and rec.last_fire == t0 + 600
    # The same due times handed in again: nothing happens.
    again = [t0 + 60 * k for k in range(1, 11)]
    assert h.state.schedules.fire("s", again, t0 + 660, t0 + 600) == []
    # A fresh state replayed from the log continues without firing the past again.
    replay = h.replayed()
    assert replay == h.state
    assert fire_due(replay, t0 + 600) == []
    restored = SchedulerState.restore(h.state.snapshot(), random.Random(1))
    assert restored == h.state
    assert [e.fire_time for e in fire_due(restored, t0 + 660) if isinstance(e, ScheduleFired)] == [
        t0 + 660
    ]


def test_catchup_after_3h_of_downtime_with_a_1h_window() -> None:
    t0 = ts("2026-01-01T00:00:00+00:00")
    for mode, expected in [
        ("all", [f"2026-01-01T03:{m}0:00Z" for m in range(6)] + ["2026-01-01T04:00:00Z"]),
        ("latest", ["2026-01-01T04:00:00Z"]),
    ]:
        h = Harness()
        spec = ScheduleSpec(
            every=600, task=TASK, catchup_window=3600, catchup=mode, overlap="allow_all"
        )  # type: ignore[arg-type]
        make(h, "c", spec, t0)
        run(h, t0 + 3600, step=60)  # up until 01:00, then the master is down 3 h
        h.now = t0 + 4 * 3600
        evs = h.rec(fire_due(h.state, h.now))
        fired = [e for e in evs if isinstance(e, ScheduleFired)]
        times = started(fired)
        # all: 03:00 to 04:00 inclusive, seven fire times, oldest first; latest: 04:00.
        assert times == expected
        # What lay before the window was missed, and counted, not fired.
        missed = sum(e.missed for e in fired)
        assert missed == (11 if mode == "all" else 17)
        assert h.state.schedules.get("c").next_fire == t0 + 4 * 3600 + 600
        assert h.replayed() == h.state


def test_a_downtime_longer_than_the_window_with_nothing_inside_fires_nothing() -> None:
    h = Harness()
    t0 = ts("2026-01-01T00:00:00+00:00")
    make(h, "d", ScheduleSpec(cron="0 * * * *", task=TASK, catchup_window=600), t0)
    h.now = t0 + 5 * 3600 + 1200  # 05:20: 01:00..05:00 missed, none within 10 minutes
    [ev] = h.rec(fire_due(h.state, h.now))
    assert isinstance(ev, ScheduleFired) and ev.outcome == "missed" and ev.missed == 5
    assert h.state.schedules.get("d").next_fire == t0 + 6 * 3600
    assert len(h.state) == 0


_LONG = Settings(region_lease_seconds=86400.0)


def _one_run(h: Harness, policy: str) -> tuple[list[ScheduleFired], list[str]]:
    t0 = ts("2026-01-01T00:00:00+00:00")
    h.now = t0
    h.region(types=("a",))  # its lease outlasts the test (see _LONG)
    spec = ScheduleSpec(every=60, task=TASK, overlap=policy)  # type: ignore[arg-type]
    make(h, "o", spec, t0)
    fired = run(h, t0 + 60)
    [leased] = h.lease()  # the first run is running
    fired += run(h, t0 + 180)  # two more fire times while it runs
    return fired, [leased.id]


def test_overlap_skip() -> None:
    h = Harness(_LONG)
    fired, [first] = _one_run(h, "skip")
    assert [e.outcome for e in fired] == ["started", "skipped", "skipped"]
    h.succeed(first)
    fired = run(h, h.now + 60)
    assert [e.outcome for e in fired] == ["started"]


def test_overlap_buffer_one() -> None:
    h = Harness(_LONG)
    fired, [first] = _one_run(h, "buffer_one")
    assert [e.outcome for e in fired] == ["started", "buffered", "skipped"]
    rec = h.state.schedules.get("o")
    assert rec.buffered == fired[1].fire_time
    h.now += 5
    h.succeed(first)
    [start] = [e for e in h.tick(h.now) if isinstance(e, ScheduleFired)]
    assert (start.trigger, start.outcome, start.fire_time) == ("buffered", "started", rec.buffered)
    assert h.state.schedules.get("o").buffered is None
    assert h.replayed() == h.state


def test_overlap_allow_all() -> None:
    h = Harness(_LONG)
    fired, _ = _one_run(h, "allow_all")
    assert [e.outcome for e in fired] == ["started"] * 3
    assert len(h.state.schedules.get("o").running) == 3


def test_overlap_cancel_other() -> None:
    h = Harness(_LONG)
    fired, [first] = _one_run(h, "cancel_other")
    assert [e.outcome for e in fired] == ["started"] * 3
    assert h.state.get(first).state is TaskState.CANCELLED
    runs = [e.task_id for e in fired if e.task_id]
    assert [h.state.get(r).state for r in runs] == [
        TaskState.CANCELLED,
        TaskState.CANCELLED,
        TaskState.READY,
    ]
    assert h.replayed() == h.state


def test_pause_resume_trigger_backfill_update_delete() -> None:
    h = Harness()
    t0 = ts("2026-01-01T00:00:00+00:00")
    make(h, "p", ScheduleSpec(every=60, task=TASK, overlap="allow_all"), t0)
    h.rec(h.state.schedules.pause("p", "db maintenance", t0))
    assert run(h, t0 + 600) == []
    rec = h.state.schedules.get("p")
    assert rec.paused and rec.note == "db maintenance"
    h.rec(h.state.schedules.resume("p", firetimes.next_after(rec.spec, h.now), h.now))
    # The times missed while paused do not fire.
    assert started(run(h, t0 + 660)) == ["2026-01-01T00:11:00Z"]
    with pytest.raises(ConflictError):
        h.state.schedules.resume("p", None, h.now)
    [ev] = [
        e for e in h.rec(h.state.schedules.trigger("p", h.now + 1)) if isinstance(e, ScheduleFired)
    ]
    assert ev.trigger == "manual" and ev.outcome == "started"
    assert h.state.schedules.get("p").next_fire == t0 + 720  # unchanged
    spec = h.state.schedules.get("p").spec
    times = firetimes.times_in(spec, t0 - 300, t0 - 60, 1000)
    evs = h.rec(h.state.schedules.backfill("p", times, h.now))
    fills = [e for e in evs if isinstance(e, ScheduleFired)]
    assert [iso(e.fire_time) for e in fills] == [
        "2025-12-31T23:55:00Z",
        "2025-12-31T23:56:00Z",
        "2025-12-31T23:57:00Z",
        "2025-12-31T23:58:00Z",
        "2025-12-31T23:59:00Z",
    ]
    assert all(e.trigger == "backfill" and e.outcome == "started" for e in fills)
    # The same range again, and one overlapping it and the scheduled 00:11 fire: only what
    # did not run before starts; rerun starts it all again.
    assert h.state.schedules.already_ran("p", times) == times
    assert h.rec(h.state.schedules.backfill("p", times, h.now)) == []
    wider = firetimes.times_in(spec, t0 - 360, t0 + 660, 1000)
    evs = h.rec(h.state.schedules.backfill("p", wider, h.now))
    again = [e for e in evs if isinstance(e, ScheduleFired)]
    assert len(wider) == 18 and len(again) == 18 - 5 - 1
    assert iso(again[0].fire_time) == "2025-12-31T23:54:00Z"
    assert t0 + 660 not in [e.fire_time for e in again]
    forced = h.rec(h.state.schedules.backfill("p", times, h.now, rerun=True))
    assert len([e for e in forced if isinstance(e, ScheduleFired)]) == 5
    # A range with more fire times than a backfill runs is refused as a whole.
    many = firetimes.times_in(spec, t0 - 86400, t0 - 60, MAX_BACKFILL)
    with pytest.raises(InvalidRequestError, match="at most 1,000 fire times; this range has more"):
        h.state.schedules.backfill("p", many, h.now)
    new = ScheduleSpec(every=120, task=TASK)
    read_at = h.state.schedules.get("p").updated_at
    with pytest.raises(ConflictError, match="changed since it was read"):
        h.state.schedules.update("p", new, None, h.now, if_updated_at=read_at - 1)
    assert h.state.schedules.get("p").spec.every == 60  # refused: nothing changed
    nxt = firetimes.next_after(new, h.now)
    h.rec(h.state.schedules.update("p", new, nxt, h.now, if_updated_at=read_at))
    assert h.state.schedules.get("p").spec.every == 120
    snap_before = h.state.snapshot()
    h.rec(h.state.schedules.delete("p", h.now))
    assert not h.state.schedules.has("p")
    assert h.replayed() == h.state
    assert SchedulerState.restore(snap_before, random.Random(0)).schedules.has("p")


def test_jitter_is_deterministic_and_within_bounds() -> None:
    offsets = {jitter_offset("s", 1000.0 + k, 30.0) for k in range(200)}
    assert all(0 <= o < 30 for o in offsets) and len(offsets) > 150
    assert jitter_offset("s", 1000.0, 30.0) == jitter_offset("s", 1000.0, 30.0)
    assert jitter_offset("s", 1000.0, 0.0) == 0.0
    h = Harness()
    t0 = ts("2026-01-01T00:00:00+00:00")
    make(h, "j", ScheduleSpec(every=60, jitter=30, task=TASK, overlap="allow_all"), t0)
    fired = run(h, t0 + 600, step=1)
    for ev in fired:
        assert ev.at == pytest.approx(ev.fire_time + jitter_offset("j", ev.fire_time, 30), abs=1.0)
    assert len(fired) == 9 + (t0 + 600 + jitter_offset("j", t0 + 600, 30) <= t0 + 600)


def test_a_refused_run_is_recorded_not_raised() -> None:
    h = Harness(Settings(admission=AdmissionSettings(max_queued=1, soft_watermark=1.0)))
    t0 = ts("2026-01-01T00:00:00+00:00")
    make(h, "r", ScheduleSpec(every=60, task=TASK, overlap="allow_all"), t0)
    fired = run(h, t0 + 180)
    assert [e.outcome for e in fired] == ["started", "refused", "refused"]
    assert "the scheduler is full" in (fired[1].reason or "")
    assert h.state.schedules.get("r").last_fire == t0 + 180


def test_schedules_are_listed_a_page_at_a_time() -> None:
    h = Harness()
    for i in range(5):
        make(h, f"s{i}", ScheduleSpec(every=60, task=TASK), h.now)
    first, cursor = h.state.schedules.page(None, 2)
    assert [r.id for r in first] == ["s0", "s1"] and cursor == "s1"
    second, cursor = h.state.schedules.page(cursor, 2)
    assert [r.id for r in second] == ["s2", "s3"] and cursor == "s3"
    last, cursor = h.state.schedules.page(cursor, 2)
    assert [r.id for r in last] == ["s4"] and cursor is None


def test_due_schedules_come_earliest_first_and_a_tick_fires_a_bounded_number() -> None:
    h = Harness()
    t0 = ts("2026-01-01T00:00:00+00:00")
    for i, every in enumerate([300, 60, 120, 60, 240]):
        make(h, f"s{i}", ScheduleSpec(every=every, task=TASK, overlap="allow_all"), t0 + 1)
    due = h.state.schedules.due(t0 + 600, 3)
    assert [r.id for r in due] == ["s1", "s3", "s2"]  # 00:01, 00:01, 00:02
    assert [r.id for r in h.state.schedules.due(t0 + 61)] == ["s1", "s3"]
    h.rec(h.state.schedules.pause("s1", None, t0 + 2))
    assert [r.id for r in h.state.schedules.due(t0 + 61)] == ["s3"]
    # Firing moves a schedule's entry: it is due again only at its next fire time.
    h.rec(fire_due(h.state, t0 + 61))
    assert h.state.schedules.due(t0 + 61) == []
    assert [r.id for r in h.state.schedules.due(t0 + 121)] == ["s2", "s3"]
