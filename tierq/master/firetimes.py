"""Fire times of schedules: cron expressions (croniter) in IANA time zones (zoneinfo), and
fixed intervals. The master's edge: the core reads no clock and no zone data, so the master
computes fire times here and hands them to the core's schedule commands.

A cron expression is matched against *wall-clock* time in the schedule's zone; the fire
times are instants (the log keys a fire by (schedule, fire time)). Where a DST change moves
the clocks, the rule is Vixie cron's (cron(8): jobs at a fixed time are not re-run in a
repeated hour, wildcard jobs run by the new time), with the hour field deciding:

- autumn, a wall time shown twice (01:00 to 02:00 on the change day in America/New_York):
  an expression whose hour field matches every hour (``*/15 * * * *``, ``0 * * * *``,
  ``@hourly``, ``*/10 * * * * *``) fires at both showings, so it keeps its real-time
  cadence: 01:45 EDT, 01:00 EST, 01:15 EST, ... 02:00 EST. One whose hour field is
  restricted (``30 1 * * *``, ``*/15 1 * * *``) fires at the first showing only, as a
  daily job should (Vixie cron would also re-run ``* 1 * * *``; here the hour decides);
- spring, a wall time the clocks skip (02:30 on the change day in Europe/Berlin) fires
  once, at the instant as far past the change as it lay inside the gap (03:30 CEST); an
  hourly-or-faster expression keeps its cadence through the gap (``*/15 * * * *`` in New
  York: 01:45 EST, 03:00 EDT, 03:15 EDT).

Intervals ignore zones: ``every`` seconds, at ``offset + k * every`` after the epoch.
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter  # type: ignore[import-untyped]

from ..core import ScheduleSpec
from ..core.validate import MAX_TIME
from ..cronspec import check_cron as check_spec
from ..cronspec import zone as _zone
from ..errors import InvalidRequestError

__all__ = ["check_spec", "due_times", "next_after", "times_in"]

#: A cron expression that matches no time in this many wall-clock steps is refused.
_MAX_STEPS = 1000
#: How far from a time a clock change is looked for (no zone has moved its clocks by more).
_CHANGE_NEAR = 3 * 3600
#: The master lists at most this many due times of one schedule per tick.
MAX_DUE = 1000


def next_after(spec: ScheduleSpec, t: float) -> float | None:
    """The first fire time strictly after ``t`` (and not before ``start_at``), or None when
    there is none before ``end_at`` nor before the year 10000. A time the calendar cannot
    reach is an InvalidRequestError, never another exception: the master's tick calls this."""
    try:
        return _next_after(spec, t)
    except CroniterBadDateError:
        raise InvalidRequestError(f"cron: no date matches {spec.cron!r}", field="cron") from None
    except (ValueError, OverflowError, OSError, KeyError) as exc:  # croniter's are ValueErrors
        raise InvalidRequestError(f"no fire time can be computed: {exc}", field="cron") from None


def _next_after(spec: ScheduleSpec, t: float) -> float | None:
    if spec.start_at is not None and t < spec.start_at:
        t = math.nextafter(spec.start_at, -math.inf)
    nxt = _interval_next(spec, t) if spec.every is not None else _cron_next(spec, t)
    if nxt is None or nxt > (spec.end_at if spec.end_at is not None else MAX_TIME):
        return None
    return nxt


def _interval_next(spec: ScheduleSpec, t: float) -> float:
    assert spec.every is not None
    every, offset = spec.every, spec.offset
    k = math.floor((t - offset) / every) + 1
    nxt = offset + k * every
    while nxt <= t:  # float rounding
        k += 1
        nxt = offset + k * every
    return nxt


def _cron_next(spec: ScheduleSpec, t: float) -> float | None:
    assert spec.cron is not None
    zone = _zone(spec.timezone)
    expr = spec.cron.strip()
    it = _parsed(expr, not expr.startswith("@") and len(expr.split()) == 6)
    # Whole seconds: a time a hair before a fire must not round up onto it.
    whole = math.floor(t)
    wall = _wall(whole, _offset(zone, whole))
    found: list[float | None] = []
    change = _change_near(zone, whole)
    if change is not None:
        at, before, after = change
        width = abs((after - before).total_seconds())
        if after > before and at <= t < at + width:
            # Just after a spring change: the gap's wall times, shifted by the jump, are
            # still to come (walked from t's wall time in the old offset).
            found.append(_first_in(it, _wall(whole, before), _wall(at, after), before, t))
        if after < before and at <= t < at + width:
            # In the second pass of a repeated hour: its first-pass times are past.
            wall = max(wall, _wall(at - 1, before))
        if after < before and _every_hour(it):
            found.append(
                _first_in(it, _wall(max(whole, at - 1), after), _wall(at, before), after, t)
            )
    found.append(_first_after(it, zone, wall, t))
    times = [x for x in found if x is not None]
    return min(times) if times else None


def _first_after(it: croniter, zone: ZoneInfo, wall: datetime, t: float) -> float | None:
    """The first matching wall time after ``wall`` whose first instant is after ``t``; a wall
    time a spring change skips maps to the instant as far past the change (zoneinfo's
    ``fold=0`` rule)."""
    it.set_current(wall, force=True)
    for _ in range(_MAX_STEPS * 10):
        cand: datetime = it.get_next(datetime)
        instant = cand.replace(tzinfo=zone, fold=0).timestamp()
        if instant > t:
            return instant
    return None


def _first_in(
    it: croniter, wall: datetime, end: datetime, offset: timedelta, t: float
) -> float | None:
    """The first matching wall time after ``wall`` and before ``end``, as the instant it is
    at ``offset``, if after ``t``."""
    it.set_current(wall, force=True)
    cand: datetime = it.get_next(datetime)
    instant = cand.replace(tzinfo=UTC).timestamp() - offset.total_seconds()
    return instant if cand < end and instant > t else None


def _wall(t: int, offset: timedelta) -> datetime:
    """The naive wall time the instant ``t`` shows at ``offset``."""
    return datetime.fromtimestamp(t, UTC).replace(tzinfo=None) + offset


def _every_hour(it: croniter) -> bool:
    """Whether the expression's hour field matches every hour (croniter reads ``*``,
    ``*/1`` and ``0-23`` alike as ``*``): such a schedule fires by elapsed time, in both
    passes of a repeated hour."""
    hours: list[object] = it.expanded[1]
    return hours == ["*"] or set(hours) == set(range(24))


def _change_near(zone: ZoneInfo, t: int) -> tuple[int, timedelta, timedelta] | None:
    """The clock change within ``_CHANGE_NEAR`` of ``t``: the first instant of the new
    offset, the offset before and the one after; None when the clocks do not move then.
    A fire time a change moves lies at most the change's size (an hour, at most two) from
    it, so changes further away do not matter."""
    lo, hi = t - _CHANGE_NEAR, t + _CHANGE_NEAR
    before, after = _offset(zone, lo), _offset(zone, hi)
    if after == before:
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(zone, mid) == before:
            lo = mid
        else:
            hi = mid
    return hi, before, _offset(zone, hi)


def _offset(zone: ZoneInfo, t: int) -> timedelta:
    return datetime.fromtimestamp(t, zone).utcoffset() or timedelta()


@functools.lru_cache(maxsize=4096)
def _parsed(expr: str, six: bool) -> croniter:
    """One croniter per expression, reused (parsing is most of a fire's cost; the master is
    one thread, and each use sets its start first)."""
    return croniter(expr, datetime(2000, 1, 1), second_at_beginning=six)


def times_in(spec: ScheduleSpec, start: float, end: float, limit: int) -> list[float]:
    """Fire times in ``[start, end]``, oldest first, at most ``limit`` + 1 (so a caller can
    tell a range with more than ``limit``)."""
    out: list[float] = []
    t = next_after(spec, math.nextafter(start, -math.inf))
    while t is not None and t <= end and len(out) <= limit:
        out.append(t)
        t = next_after(spec, t)
    return out


def due_times(
    spec: ScheduleSpec, next_fire: float, now: float
) -> tuple[list[float], float | None, int]:
    """The nominal fire times from ``next_fire`` up to ``now``, the one after them, and how
    many were left out because they lay before the catch-up window (they would not fire).

    At most ``MAX_DUE`` times are listed; the rest are listed at the next tick.
    """
    skipped = 0
    horizon = now - spec.catchup_window
    start = next_fire
    if next_fire < horizon:
        first_inside = next_after(spec, math.nextafter(horizon, -math.inf))
        skipped = _count(spec, next_fire, horizon)
        if first_inside is None or first_inside > now:
            # Nothing inside the window: the last missed time stands for all of them.
            last = _last_before(spec, next_fire, horizon)
            return [last], first_inside, skipped - 1
        start = first_inside
    times: list[float] = []
    t: float | None = start
    while t is not None and t <= now and len(times) < MAX_DUE:
        times.append(t)
        t = next_after(spec, t)
    return times, t, skipped


def _count(spec: ScheduleSpec, start: float, horizon: float) -> int:
    """Fire times in ``[start, horizon)`` (an estimate past 10,000 for cron schedules)."""
    if spec.every is not None:
        return max(0, math.ceil((horizon - start) / spec.every))
    n = 0
    t: float | None = start
    while t is not None and t < horizon and n < 10_000:
        n += 1
        t = next_after(spec, t)
    return n


def _last_before(spec: ScheduleSpec, start: float, horizon: float) -> float:
    """The last fire time before ``horizon``, from ``start`` (itself one)."""
    if spec.every is not None:
        k = math.ceil((horizon - spec.offset) / spec.every) - 1
        return max(start, spec.offset + k * spec.every)
    last = start
    t = next_after(spec, start)
    steps = 0
    while t is not None and t < horizon and steps < 100_000:
        last = t
        t = next_after(spec, t)
        steps += 1
    return last


def utc(t: float) -> str:
    """An instant as ISO 8601 in UTC (for messages)."""
    return datetime.fromtimestamp(t, UTC).isoformat()
