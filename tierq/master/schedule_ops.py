"""The master's schedule operations and the firing of due schedules.

Fire times are computed here (``firetimes``) and handed to the core's schedule commands,
which decide the rest and return the events; like every handler, nothing here waits. The
tick loop calls :func:`fire_due` with the core's own ``tick``: each due schedule's fires and
their runs are one group of events, appended at once (see ``tierq/core/schedules.py`` for why
a fire time then fires exactly once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from ..core import Event, ScheduleFired, ScheduleRecord, SchedulerState, ScheduleSpec
from ..core.schedule_records import check_schedule_spec
from ..core.schedules import MAX_BACKFILL
from ..errors import InvalidRequestError, TierqError
from ..protocol import (
    ScheduleReply,
    ScheduleRequest,
    ScheduleRunView,
    SchedulesReply,
    ScheduleView,
    decode,
)
from . import firetimes

if TYPE_CHECKING:
    from .handlers import Handled

__all__ = ["ScheduleHandlers", "fire_due", "schedule_view", "spec_diff"]

log = logging.getLogger("tierq.master")

#: Schedules in one page of a list (each with its recent runs: keep a reply under 1 MB).
MAX_LIST_PAGE = 200
#: Schedules fired by one tick: the rest are still due, and the tick loop comes back at once
#: (one tick's events are one append, and its time is time the loop does not serve requests).
MAX_FIRES_PER_TICK = 1000


def fire_due(state: SchedulerState, now: float) -> list[Event]:
    """Fire every schedule that is due at ``now``; a schedule whose fire times cannot be
    computed any more (its zone vanished from the zone data) is paused with the reason."""
    events: list[Event] = []
    for rec in state.schedules.due(now, MAX_FIRES_PER_TICK):
        assert rec.next_fire is not None
        try:
            times, after, skipped = firetimes.due_times(rec.spec, rec.next_fire, now)
        except TierqError as exc:
            log.error("schedule %s: %s; paused", rec.id, exc)
            events += state.schedules.pause(rec.id, f"fire times failed: {exc}", now)
            continue
        events += state.schedules.fire(rec.id, times, after, now, skipped)
    return events


def _first_fire(spec: ScheduleSpec, now: float) -> float:
    """The first fire time of a new schedule; one that would never fire is refused."""
    first = firetimes.next_after(spec, now)
    if first is None:
        field = "end_at" if spec.end_at is not None else "every" if spec.every else "cron"
        raise InvalidRequestError(
            f"{field}: the schedule has no fire time after now"
            + (f" (end_at is {firetimes.utc(spec.end_at)})" if spec.end_at is not None else ""),
            field=field,
        )
    return first


def schedule_view(state: SchedulerState, rec: ScheduleRecord) -> ScheduleView:
    recent = [
        ScheduleRunView(
            **msgspec.structs.asdict(run),
            state=state.schedules.run_state(run.task_id, run.workflow_id),
        )
        for run in rec.recent
    ]
    fields = msgspec.structs.asdict(rec)
    del fields["running"], fields["ran"]
    fields["recent"] = recent
    return ScheduleView(**fields, warnings=state.schedules.warnings(rec.id))


def spec_diff(stored: ScheduleSpec, declared: ScheduleSpec) -> list[str]:
    """``field: stored -> declared`` for every field the two specs differ in."""
    a = msgspec.to_builtins(stored)
    b = msgspec.to_builtins(declared)
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            out.append(f"{key}: {a.get(key)!r} -> {b.get(key)!r}")
    return out


class ScheduleHandlers:
    """The handler of each ``schedule_*`` operation, ``(payload, now) -> Handled``; the
    state is read through ``state_of`` (a new term brings a new state)."""

    def __init__(self, state_of: Callable[[], SchedulerState]) -> None:
        self._state_of = state_of

    def table(self) -> dict[str, Callable[[bytes, float], Handled]]:
        return {f"schedule_{op.rstrip('_')}": getattr(self, op) for op in _OPS}

    def _reply(self, sid: str, events: list[Event], **kw: object) -> Handled:
        from .handlers import Handled

        state = self._state_of()
        view = schedule_view(state, state.schedules.get(sid)) if state.schedules.has(sid) else None
        return Handled(events, ScheduleReply(schedule=view, **kw))  # type: ignore[arg-type]

    def create(self, data: bytes, now: float) -> Handled:
        req, state = _req(data), self._state_of()
        spec = _spec(req)
        events = state.schedules.create(req.id, spec, _first_fire(spec, now), now)
        return self._reply(req.id, events, status="created")

    def declare(self, data: bytes, now: float) -> Handled:
        """A schedule declared in code: made if new; if stored, never overwritten, and the
        reply says how the two differ."""
        req, state = _req(data), self._state_of()
        spec = _spec(req)
        if state.schedules.has(req.id):
            diff = spec_diff(state.schedules.get(req.id).spec, spec)
            return self._reply(req.id, [], status="differs" if diff else "same", diff=diff)
        events = state.schedules.create(req.id, spec, _first_fire(spec, now), now, source="code")
        return self._reply(req.id, events, status="created")

    def update(self, data: bytes, now: float) -> Handled:
        req, state = _req(data), self._state_of()
        spec = _spec(req)
        rec = state.schedules.get(req.id)
        since = max(now, rec.last_fire) if rec.last_fire is not None else now
        nxt = firetimes.next_after(spec, since)
        events = state.schedules.update(req.id, spec, nxt, now, req.if_updated_at)
        return self._reply(req.id, events)

    def delete(self, data: bytes, now: float) -> Handled:
        req = _req(data)
        return self._reply(req.id, self._state_of().schedules.delete(req.id, now))

    def pause(self, data: bytes, now: float) -> Handled:
        req = _req(data)
        return self._reply(req.id, self._state_of().schedules.pause(req.id, req.note, now))

    def resume(self, data: bytes, now: float) -> Handled:
        req, state = _req(data), self._state_of()
        nxt = firetimes.next_after(state.schedules.get(req.id).spec, now)
        return self._reply(req.id, state.schedules.resume(req.id, nxt, now))

    def trigger(self, data: bytes, now: float) -> Handled:
        req = _req(data)
        events = self._state_of().schedules.trigger(req.id, now)
        return self._reply(req.id, events, runs=_runs(events))

    def backfill(self, data: bytes, now: float) -> Handled:
        req, state = _req(data), self._state_of()
        if req.start is None or req.end is None or req.end < req.start:
            raise InvalidRequestError("backfill: a range start <= end", field="start")
        if req.end > now:
            raise InvalidRequestError("backfill: the range must be in the past", field="end")
        times = firetimes.times_in(
            state.schedules.get(req.id).spec, req.start, req.end, MAX_BACKFILL
        )
        skipped = [] if req.rerun else state.schedules.already_ran(req.id, times)
        events = state.schedules.backfill(req.id, times, now, req.rerun)
        return self._reply(req.id, events, runs=_runs(events), already_ran=skipped)

    def get(self, data: bytes, now: float) -> Handled:
        return self._reply(_req(data).id, [])

    def list_(self, data: bytes, now: float) -> Handled:
        from .handlers import Handled

        req, state = _req(data), self._state_of()
        limit = max(1, min(req.limit, MAX_LIST_PAGE))
        page, cursor = state.schedules.page(req.cursor, limit)
        views = [schedule_view(state, r) for r in page]
        return Handled([], SchedulesReply(schedules=views, next_cursor=cursor))


_OPS: tuple[str, ...] = ("create", "declare", "update", "delete", "pause", "resume")
_OPS += ("trigger", "backfill", "get", "list_")


def _req(data: bytes) -> ScheduleRequest:
    return decode(data, ScheduleRequest)


def _spec(req: ScheduleRequest) -> ScheduleSpec:
    """The request's spec, its shape checked by the core and its cron expression and zone
    here, before any fire time is computed from it."""
    if req.spec is None:
        raise InvalidRequestError("a schedule spec is needed", field="spec")
    spec = check_schedule_spec(req.spec)
    firetimes.check_spec(spec)
    return spec


def _runs(events: list[Event]) -> list[str]:
    return [
        run
        for ev in events
        if isinstance(ev, ScheduleFired)
        for run in (ev.task_id, ev.workflow_id)
        if run is not None
    ]
