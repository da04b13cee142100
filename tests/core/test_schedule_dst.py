"""Schedules across DST changes, with an injected clock: the autumn repeated hour (an
expression whose hour field matches every hour fires in both passes, one with a fixed hour
once, at the first), the spring gap (unchanged), and firing, catch-up, backfill, the next
fire time and replay across the change. Fire times come from ``tierq.master.firetimes``."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from core_harness import Harness

from tierq.core import ScheduleFired, ScheduleSpec, TaskSpec
from tierq.master import firetimes
from tierq.master.schedule_ops import ScheduleHandlers, fire_due
from tierq.protocol import ScheduleRequest, encode

TASK = TaskSpec(name="a")
NY, BERLIN = "America/New_York", "Europe/Berlin"
# The changes of 2026 (UTC): New York 2026-03-08 07:00 (02:00 EST -> 03:00 EDT) and
# 2026-11-01 06:00 (02:00 EDT -> 01:00 EST); Berlin 2026-03-29 01:00 (02:00 CET -> 03:00
# CEST) and 2026-10-25 01:00 (03:00 CEST -> 02:00 CET).
CHANGES = {
    (NY, "spring"): "2026-03-08T07:00:00+00:00",
    (NY, "autumn"): "2026-11-01T06:00:00+00:00",
    (BERLIN, "spring"): "2026-03-29T01:00:00+00:00",
    (BERLIN, "autumn"): "2026-10-25T01:00:00+00:00",
}


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def local(t: float, zone: str) -> str:
    """An instant as the zone's clocks show it, with the zone's abbreviation (EDT/EST)."""
    return datetime.fromtimestamp(t, ZoneInfo(zone)).strftime("%H:%M:%S %Z")


def spec(cron: str, zone: str, **kw: object) -> ScheduleSpec:
    s = ScheduleSpec(cron=cron, timezone=zone, task=TASK, overlap="allow_all", **kw)  # type: ignore[arg-type]
    firetimes.check_spec(s)
    return s


def fires(cron: str, zone: str, start: str, end: str) -> list[str]:
    times = firetimes.times_in(spec(cron, zone), ts(start), ts(end), 10_000)
    return [local(t, zone) for t in times]


@pytest.mark.parametrize(
    ("cron", "zone", "start", "end", "expected"),
    [
        # New York repeats 01:00-02:00: every wall match of both passes fires.
        (
            "*/15 * * * *",
            NY,
            "2026-11-01T05:00:00+00:00",
            "2026-11-01T07:15:00+00:00",
            [f"01:{m:02d}:00 EDT" for m in (0, 15, 30, 45)]
            + [f"01:{m:02d}:00 EST" for m in (0, 15, 30, 45)]
            + ["02:00:00 EST", "02:15:00 EST"],
        ),
        (
            "0 * * * *",
            NY,
            "2026-11-01T04:00:00+00:00",
            "2026-11-01T08:00:00+00:00",
            ["00:00:00 EDT", "01:00:00 EDT", "01:00:00 EST", "02:00:00 EST", "03:00:00 EST"],
        ),
        (
            "@hourly",
            NY,
            "2026-11-01T04:00:00+00:00",
            "2026-11-01T08:00:00+00:00",
            ["00:00:00 EDT", "01:00:00 EDT", "01:00:00 EST", "02:00:00 EST", "03:00:00 EST"],
        ),
        # A fixed hour fires once, at the first showing; the next day at 01:30 EST.
        (
            "30 1 * * *",
            NY,
            "2026-10-31T00:00:00+00:00",
            "2026-11-03T00:00:00+00:00",
            ["01:30:00 EDT", "01:30:00 EDT", "01:30:00 EST"],
        ),
        # So does a fixed hour whose minutes repeat (the hour field decides).
        (
            "*/30 1 * * *",
            NY,
            "2026-11-01T04:00:00+00:00",
            "2026-11-01T08:00:00+00:00",
            ["01:00:00 EDT", "01:30:00 EDT"],
        ),
        # Berlin repeats 02:00-03:00.
        (
            "*/15 * * * *",
            BERLIN,
            "2026-10-25T00:00:00+00:00",
            "2026-10-25T02:00:00+00:00",
            [f"02:{m:02d}:00 CEST" for m in (0, 15, 30, 45)]
            + [f"02:{m:02d}:00 CET" for m in (0, 15, 30, 45)]
            + ["03:00:00 CET"],
        ),
        (
            "0 * * * *",
            BERLIN,
            "2026-10-24T23:00:00+00:00",
            "2026-10-25T03:00:00+00:00",
            ["01:00:00 CEST", "02:00:00 CEST", "02:00:00 CET", "03:00:00 CET", "04:00:00 CET"],
        ),
        (
            "@hourly",
            BERLIN,
            "2026-10-24T23:00:00+00:00",
            "2026-10-25T03:00:00+00:00",
            ["01:00:00 CEST", "02:00:00 CEST", "02:00:00 CET", "03:00:00 CET", "04:00:00 CET"],
        ),
        (
            "30 2 * * *",
            BERLIN,
            "2026-10-24T00:00:00+00:00",
            "2026-10-27T00:00:00+00:00",
            ["02:30:00 CEST", "02:30:00 CEST", "02:30:00 CET"],
        ),
        # Spring, as before: the skipped wall times fire as far past the change as they lay
        # in the gap, so an hourly-or-faster cadence goes on in real time.
        (
            "*/15 * * * *",
            NY,
            "2026-03-08T06:30:00+00:00",
            "2026-03-08T07:30:00+00:00",
            ["01:30:00 EST", "01:45:00 EST", "03:00:00 EDT", "03:15:00 EDT", "03:30:00 EDT"],
        ),
        (
            "0 * * * *",
            NY,
            "2026-03-08T05:00:00+00:00",
            "2026-03-08T09:00:00+00:00",
            ["00:00:00 EST", "01:00:00 EST", "03:00:00 EDT", "04:00:00 EDT", "05:00:00 EDT"],
        ),
        (
            "@hourly",
            BERLIN,
            "2026-03-28T23:00:00+00:00",
            "2026-03-29T03:00:00+00:00",
            ["00:00:00 CET", "01:00:00 CET", "03:00:00 CEST", "04:00:00 CEST", "05:00:00 CEST"],
        ),
        (
            "30 1 * * *",
            NY,
            "2026-03-07T00:00:00+00:00",
            "2026-03-10T00:00:00+00:00",
            ["01:30:00 EST", "01:30:00 EST", "01:30:00 EDT"],
        ),
        (
            "30 2 * * *",
            BERLIN,
            "2026-03-28T00:00:00+00:00",
            "2026-03-31T00:00:00+00:00",
            ["02:30:00 CET", "03:30:00 CEST", "02:30:00 CEST"],
        ),
    ],
)
def test_fire_times_through_the_dst_changes(
    cron: str, zone: str, start: str, end: str, expected: list[str]
) -> None:
    assert fires(cron, zone, start, end) == expected


@pytest.mark.parametrize(("zone", "season"), list(CHANGES))
@pytest.mark.parametrize(
    ("cron", "step"),
    [("*/15 * * * *", 900), ("0 * * * *", 3600), ("@hourly", 3600), ("*/10 * * * * *", 10)],
)
def test_an_every_hour_expression_keeps_its_real_time_cadence(
    zone: str, season: str, cron: str, step: int
) -> None:
    change = ts(CHANGES[(zone, season)])
    times = firetimes.times_in(spec(cron, zone), change - 3 * 3600, change + 3 * 3600, 10_000)
    assert len(times) == 6 * 3600 // step + 1
    assert {b - a for a, b in itertools.pairwise(times)} == {step}


def test_a_schedule_every_10_seconds_fires_both_passes() -> None:
    s = spec("*/10 * * * * *", NY)
    first = firetimes.times_in(
        s, ts("2026-11-01T05:00:00+00:00"), ts("2026-11-01T05:59:59+00:00"), 999
    )
    second = firetimes.times_in(
        s, ts("2026-11-01T06:00:00+00:00"), ts("2026-11-01T06:59:59+00:00"), 999
    )
    assert len(first) == len(second) == 360
    # The same wall times, an hour apart, with distinct keys.
    assert [local(t, NY)[:8] for t in first] == [local(t, NY)[:8] for t in second]
    assert local(first[-1], NY) == "01:59:50 EDT" and local(second[0], NY) == "01:00:00 EST"


def make(h: Harness, sid: str, s: ScheduleSpec, now: float) -> None:
    h.now = now
    h.rec(h.state.schedules.create(sid, s, firetimes.next_after(s, now), now))


def run(h: Harness, until: float, step: float) -> list[ScheduleFired]:
    out: list[ScheduleFired] = []
    while h.now < until:
        h.now = min(until, h.now + step)
        evs = h.rec(h.state.tick(h.now) + fire_due(h.state, h.now))
        out += [e for e in evs if isinstance(e, ScheduleFired)]
    return out


def test_the_master_fires_both_passes_once_each_and_lists_the_next_fire() -> None:
    h = Harness()
    make(h, "q", spec("*/15 * * * *", NY), ts("2026-11-01T05:40:00+00:00"))  # 01:40 EDT
    rec = h.state.schedules.get("q")
    assert rec.next_fire is not None and local(rec.next_fire, NY) == "01:45:00 EDT"
    fired = run(h, ts("2026-11-01T05:50:00+00:00"), 60)
    assert [local(e.fire_time, NY) for e in fired] == ["01:45:00 EDT"]
    # The next fire listed is the second pass's first, 15 minutes on, not 02:00 EST.
    assert local(h.state.schedules.get("q").next_fire or 0, NY) == "01:00:00 EST"
    fired += run(h, ts("2026-11-01T07:05:00+00:00"), 60)
    times = [e.fire_time for e in fired]
    assert [local(t, NY) for t in times] == ["01:45:00 EDT"] + [
        f"01:{m:02d}:00 EST" for m in (0, 15, 30, 45)
    ] + ["02:00:00 EST"]
    assert len(set(times)) == len(times) and all(e.outcome == "started" for e in fired)
    # Listing the same due times again (a restart, a new leader) fires nothing.
    assert h.state.schedules.fire("q", times, ts("2026-11-01T07:15:00+00:00"), h.now) == []
    replay = h.replayed()
    assert replay == h.state
    assert fire_due(replay, h.now) == []


def test_a_fixed_hour_made_in_the_second_pass_waits_for_the_next_day() -> None:
    h = Harness()
    now = ts("2026-11-01T06:05:00+00:00")  # 01:05 EST: 01:30 was shown once already
    make(h, "d", spec("30 1 * * *", NY), now)
    nxt = h.state.schedules.get("d").next_fire
    assert nxt == ts("2026-11-02T06:30:00+00:00")  # 01:30 EST the next day
    make(h, "q", spec("*/15 * * * *", NY), now)
    assert h.state.schedules.get("q").next_fire == ts("2026-11-01T06:15:00+00:00")


@pytest.mark.parametrize(
    ("mode", "expected", "missed"),
    [
        # Down from 00:50 EDT to 02:10 EST with a 1 h window: 01:15 EST onward fire; 01:00
        # to 01:45 EDT and 01:00 EST lay before the window.
        ("all", ["01:15:00 EST", "01:30:00 EST", "01:45:00 EST", "02:00:00 EST"], 5),
        ("latest", ["02:00:00 EST"], 8),
    ],
)
def test_catchup_across_the_autumn_change(mode: str, expected: list[str], missed: int) -> None:
    h = Harness()
    make(
        h,
        "c",
        spec("*/15 * * * *", NY, catchup_window=3600, catchup=mode),
        ts("2026-11-01T04:50:00+00:00"),
    )
    h.now = ts("2026-11-01T07:10:00+00:00")
    fired = [e for e in h.rec(fire_due(h.state, h.now)) if isinstance(e, ScheduleFired)]
    assert [local(e.fire_time, NY) for e in fired if e.outcome == "started"] == expected
    assert sum(e.missed for e in fired) == missed
    assert h.state.schedules.get("c").next_fire == ts("2026-11-01T07:15:00+00:00")
    assert h.replayed() == h.state


def test_catchup_of_a_fixed_hour_across_the_autumn_change_fires_it_once() -> None:
    h = Harness()
    make(h, "d", spec("30 1 * * *", NY, catchup_window=4 * 3600), ts("2026-11-01T05:00:00+00:00"))
    h.now = ts("2026-11-01T07:10:00+00:00")  # down through both passes of 01:30
    fired = [e for e in h.rec(fire_due(h.state, h.now)) if isinstance(e, ScheduleFired)]
    assert [(local(e.fire_time, NY), e.outcome) for e in fired] == [("01:30:00 EDT", "started")]
    assert h.state.schedules.get("d").next_fire == ts("2026-11-02T06:30:00+00:00")


def test_backfill_across_the_autumn_change_runs_each_pass() -> None:
    h = Harness()
    make(h, "b", spec("0 * * * *", NY), ts("2026-11-02T00:00:00+00:00"))
    handlers = ScheduleHandlers(lambda: h.state)
    req = ScheduleRequest(
        id="b", start=ts("2026-11-01T04:00:00+00:00"), end=ts("2026-11-01T08:00:00+00:00")
    )
    done = handlers.backfill(encode(req), h.now)
    h.rec(done.events)
    fills = [e for e in done.events if isinstance(e, ScheduleFired)]
    assert [local(e.fire_time, NY) for e in fills] == [
        "00:00:00 EDT",
        "01:00:00 EDT",
        "01:00:00 EST",
        "02:00:00 EST",
        "03:00:00 EST",
    ]
    assert all(e.trigger == "backfill" and e.outcome == "started" for e in fills)
    assert len({e.task_id for e in fills}) == 5
    assert h.state.schedules.get("b").next_fire == ts("2026-11-02T00:00:00+00:00") + 3600
    assert h.replayed() == h.state


def test_every_fire_is_keyed_by_an_instant_distinct_across_the_passes() -> None:
    for zone in (NY, BERLIN):
        change = ts(CHANGES[(zone, "autumn")])
        times = firetimes.times_in(spec("* * * * *", zone), change - 3600, change + 3600, 10_000)
        assert len(times) == len(set(times)) == 121
        assert times == sorted(times)
        assert all(isinstance(t, float) for t in times)
        assert datetime.fromtimestamp(times[0], UTC) < datetime.fromtimestamp(times[-1], UTC)


@pytest.mark.parametrize("zone", [NY, BERLIN, "Australia/Lord_Howe", "UTC"])
def test_every_15_minutes_is_every_900_seconds_whatever_the_clocks_do(zone: str) -> None:
    """Against a reference: in a zone whose offsets are whole quarter hours, the fire times
    of ``*/15 * * * *`` are the multiples of 900 s (Lord Howe moves its clocks by 30 min)."""
    s = spec("*/15 * * * *", zone)
    rng = random.Random(17)
    changes = [ts(c) for (z, _), c in CHANGES.items() if z == zone] or [ts(CHANGES[(NY, "autumn")])]
    if zone == "Australia/Lord_Howe":  # 2026-04-05 02:00 -> 01:30, 2026-10-04 02:00 -> 02:30
        changes = [ts("2026-04-04T15:00:00+00:00"), ts("2026-10-03T15:30:00+00:00")]
    for _ in range(2000):
        t = rng.choice(changes) + rng.uniform(-4 * 3600, 4 * 3600)
        assert firetimes.next_after(s, t) == (t // 900 + 1) * 900, (zone, iso_utc(t))


@pytest.mark.parametrize(("zone", "cron"), [(NY, "30 1 * * *"), (BERLIN, "30 2 * * *")])
def test_a_daily_job_fires_once_on_each_day_of_a_year(zone: str, cron: str) -> None:
    times = firetimes.times_in(
        spec(cron, zone), ts("2026-01-01T12:00:00+00:00"), ts("2026-12-31T12:00:00+00:00"), 999
    )
    days = [datetime.fromtimestamp(t, ZoneInfo(zone)).date() for t in times]
    assert len(days) == len(set(days)) == 364  # 2 Jan to 31 Dec, once each


def iso_utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()
