"""Schedules: the commands that create, change and fire them, and their events' handlers.

Fire times come from the master (``tierq/master/firetimes.py`` reads cron expressions, zones
and intervals): a command is handed the nominal fire times that are due and the next one after
them, and decides everything else here: the catch-up window, the overlap policy, the jitter
(``jitter_offset``), and the run each fire submits. Each decision is one ``schedule_fired``
event keyed by (schedule, fire time), appended together with the run's submission, so a fire
is in the log with its run or not at all; and a scheduled fire at or before the schedule's
``last_fire`` is ignored, so a master that computes the same due times again (after a restart,
a failover, or as a deposed master whose append the log refuses) fires nothing twice.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import msgspec

from ..errors import ChangedSinceReadError, ConflictError, InvalidRequestError, TierqError
from . import cascade, submission, workflows
from .book import Book
from .events import (
    Event,
    ScheduleCreated,
    ScheduleDeleted,
    ScheduleFired,
    SchedulePaused,
    ScheduleResumed,
    ScheduleUpdated,
)
from .model import TERMINAL_STATES, TaskSpec
from .schedule_records import (
    MAX_RAN,
    MAX_RECENT,
    ScheduleRecord,
    ScheduleRun,
    ScheduleSpec,
    check_schedule_id,
    check_schedule_spec,
    jitter_offset,
)
from .validate import check_specs, check_text

__all__ = [
    "active_runs",
    "already_ran",
    "backfill",
    "create",
    "delete",
    "fire_due",
    "on_created",
    "on_deleted",
    "on_fired",
    "on_paused",
    "on_resumed",
    "on_updated",
    "pause",
    "release_buffered",
    "resume",
    "trigger",
    "update",
]

#: A backfill fires at most this many times per call.
MAX_BACKFILL = 1000


def create(
    book: Book,
    schedule_id: str,
    spec: ScheduleSpec,
    next_fire: float | None,
    now: float,
    source: str = "api",
) -> list[Event]:
    check_schedule_id(schedule_id)
    spec = check_schedule_spec(spec)
    _check_target(book, spec)
    if schedule_id in book.schedules:
        raise ConflictError(f"schedule {schedule_id!r} exists", ids=(schedule_id,))
    if source not in ("api", "code"):
        raise InvalidRequestError("source: api or code", field="source")
    if next_fire is not None:
        next_fire = float(next_fire)
    out: list[Event] = []
    ev = ScheduleCreated(
        at=float(now), schedule=schedule_id, spec=spec, next_fire=next_fire, source=source
    )
    book.emit(ev, out)
    return out


def update(
    book: Book,
    schedule_id: str,
    spec: ScheduleSpec,
    next_fire: float | None,
    now: float,
    if_updated_at: float | None = None,
) -> list[Event]:
    """Replace the spec; fires continue from ``next_fire`` (the master computes it from the
    new spec, after the last fire time).

    With ``if_updated_at`` (the ``updated_at`` of the record the new spec was made from), a
    record changed since is not overwritten: ChangedSinceReadError, nothing changed."""
    rec = book.schedules.get(schedule_id)
    if if_updated_at is not None and rec.updated_at != if_updated_at:
        raise ChangedSinceReadError(
            f"schedule {schedule_id!r} was changed since it was read (updated at "
            f"{rec.updated_at}, not {if_updated_at}); read it and change it again",
            ids=(schedule_id,),
        )
    spec = check_schedule_spec(spec)
    _check_target(book, spec)
    out: list[Event] = []
    ev = ScheduleUpdated(at=float(now), schedule=schedule_id, spec=spec, next_fire=next_fire)
    book.emit(ev, out)
    return out


def delete(book: Book, schedule_id: str, now: float) -> list[Event]:
    """Forget the schedule; the runs it started go on."""
    book.schedules.get(schedule_id)
    out: list[Event] = []
    book.emit(ScheduleDeleted(at=float(now), schedule=schedule_id), out)
    return out


def pause(book: Book, schedule_id: str, note: str | None, now: float) -> list[Event]:
    book.schedules.get(schedule_id)
    if note is not None:
        check_text(note, "note", 1000)
    out: list[Event] = []
    book.emit(SchedulePaused(at=float(now), schedule=schedule_id, note=note), out)
    return out


def resume(book: Book, schedule_id: str, next_fire: float | None, now: float) -> list[Event]:
    """Unpause; ``next_fire`` is the first fire time after ``now`` (missed times while paused
    do not fire)."""
    rec = book.schedules.get(schedule_id)
    if not rec.paused:
        raise ConflictError(f"schedule {schedule_id!r} is not paused", ids=(schedule_id,))
    out: list[Event] = []
    book.emit(ScheduleResumed(at=float(now), schedule=schedule_id, next_fire=next_fire), out)
    return out


def fire_due(
    book: Book,
    schedule_id: str,
    times: Sequence[float],
    after: float | None,
    now: float,
    skipped_before: int = 0,
) -> list[Event]:
    """Fire the schedule's due nominal ``times`` (ascending; ``after`` is the fire time that
    follows the last of them, None when there is none).

    Times at or before the last fire are ignored (already decided). Of the rest, those older
    than the catch-up window are missed, and of those inside it all fire in order, or only
    the latest (``catchup``). A time whose jitter puts it after ``now`` stops the walk: it is
    the next fire. ``skipped_before`` counts fire times the master did not list because they
    lay before the window.
    """
    now = float(now)
    rec = book.schedules.get(schedule_id)
    out: list[Event] = []
    if rec.paused:
        return out
    last = rec.last_fire
    fresh = [t for t in times if last is None or t > last]
    spec = rec.spec
    due: list[float] = []
    next_fire = after
    for i, t in enumerate(fresh):
        if t + jitter_offset(rec.id, t, spec.jitter) > now:
            next_fire = t
            break
        due.append(fresh[i])
    if not due:
        return out
    horizon = now - spec.catchup_window
    missed = [t for t in due if t < horizon]
    keep = [t for t in due if t >= horizon]
    if keep and spec.catchup == "latest":
        missed += keep[:-1]
        keep = keep[-1:]
    missed_count = len(missed) + skipped_before
    if not keep:
        ev = ScheduleFired(
            at=now,
            schedule=schedule_id,
            fire_time=max(missed),
            trigger="scheduled",
            outcome="missed",
            advance=True,
            next_fire=next_fire,
            missed=missed_count,
        )
        book.emit(ev, out)
        return out
    for i, t in enumerate(keep):
        final = i == len(keep) - 1
        _fire_one(
            book,
            rec,
            t,
            "scheduled",
            now,
            out,
            advance=True,
            next_fire=next_fire if final else keep[i + 1],
            missed=missed_count if i == 0 else 0,
        )
    return out


def trigger(book: Book, schedule_id: str, now: float) -> list[Event]:
    """Fire now, outside the calendar (the overlap policy applies); the schedule's next fire
    is unchanged. Refused while one is decided for this very instant already."""
    now = float(now)
    rec = book.schedules.get(schedule_id)
    if any(r.fire_time == now and r.kind == "manual" for r in rec.recent):
        raise ConflictError(f"schedule {schedule_id!r} was triggered at {now}", ids=(schedule_id,))
    out: list[Event] = []
    _fire_one(book, rec, now, "manual", now, out)
    return out


def backfill(
    book: Book, schedule_id: str, times: Sequence[float], now: float, rerun: bool = False
) -> list[Event]:
    """Run the schedule for past fire ``times`` (the master lists those of a range), each
    once, oldest first, whatever the overlap policy; the schedule's next fire is unchanged.

    A fire time whose run was started before (``already_ran``) is left out, unless ``rerun``:
    running the same range twice does not run anything twice."""
    now = float(now)
    rec = book.schedules.get(schedule_id)
    if len(times) > MAX_BACKFILL:
        raise InvalidRequestError(
            # The master lists one time past the limit, not all of them: say "more".
            f"a backfill runs at most {MAX_BACKFILL:,} fire times; this range has more: split it",
            field="end",
        )
    skip = set() if rerun else set(already_ran(book, schedule_id, times))
    out: list[Event] = []
    for t in sorted(set(times) - skip):
        _start(book, rec, float(t), "backfill", now, out, advance=False, next_fire=None, missed=0)
    return out


def already_ran(book: Book, schedule_id: str, times: Sequence[float]) -> list[float]:
    """Those of ``times`` whose run was started (among the schedule's latest ``MAX_RAN``)."""
    ran = book.schedules.get(schedule_id).ran
    found = []
    for t in sorted(set(times)):
        i = bisect.bisect_left(ran, t)
        if i < len(ran) and ran[i] == t:
            found.append(t)
    return found


def release_buffered(book: Book, now: float, out: list[Event]) -> None:
    """Start each buffered fire whose schedule has no unfinished run left (from ``tick``)."""
    for rec in book.schedules.buffered():
        if rec.buffered is not None and not active_runs(book, rec):
            _start(book, rec, rec.buffered, "buffered", now, out, False, None, 0)


def active_runs(book: Book, rec: ScheduleRecord) -> list[str]:
    """The runs of ``rec`` that are not finished (evicted ones are finished)."""
    active = []
    for rid in rec.running:
        wf = book.workflows.get(rid)
        if wf is not None:
            if wf.state is None:
                active.append(rid)
            continue
        task = book.tasks.get(rid)
        if task is not None and task.state not in TERMINAL_STATES:
            active.append(rid)
    return active


def _fire_one(
    book: Book,
    rec: ScheduleRecord,
    t: float,
    kind: str,
    now: float,
    out: list[Event],
    advance: bool = False,
    next_fire: float | None = None,
    missed: int = 0,
) -> None:
    """Decide one fire time by the overlap policy: start, cancel and start, buffer or skip."""
    policy = rec.spec.overlap
    active = active_runs(book, rec) if policy != "allow_all" else []
    if active and policy == "cancel_other":
        for rid in active:
            _cancel_run(book, rid, now, out)
        active = []
    if not active:
        _start(book, rec, t, kind, now, out, advance, next_fire, missed)
        return
    outcome = "buffered" if policy == "buffer_one" and rec.buffered is None else "skipped"
    reason = "the previous run is still running"
    if policy == "buffer_one" and outcome == "skipped":
        reason += ", and one fire is buffered already"
    ev = ScheduleFired(
        at=now,
        schedule=rec.id,
        fire_time=t,
        trigger=kind,
        outcome=outcome,
        reason=reason,
        advance=advance,
        next_fire=next_fire,
        missed=missed,
    )
    book.emit(ev, out)


def _cancel_run(book: Book, run_id: str, now: float, out: list[Event]) -> None:
    try:
        if book.workflows.get(run_id) is not None:
            out += cascade.cancel_workflow(book, run_id, now)
        else:
            out += cascade.cancel(book, run_id, now)
    except TierqError:
        pass  # finished meanwhile: nothing to cancel


def _start(
    book: Book,
    rec: ScheduleRecord,
    t: float,
    kind: str,
    now: float,
    out: list[Event],
    advance: bool,
    next_fire: float | None,
    missed: int,
) -> None:
    """Submit the run of fire time ``t`` and record the fire; a refusal (queue full, a spec
    the rules refuse) is recorded as the fire's outcome, not raised."""
    spec = rec.spec
    task_id = workflow_id = reason = None
    try:
        if spec.task is not None:
            events, ids = submission.submit(book, [_task_for(spec, spec.task, t)], now)
            task_id = ids[0]
        else:
            assert spec.workflow is not None
            events, workflow_id, _ = workflows.submit_workflow(book, spec.workflow, now)
    except TierqError as exc:
        events = []
        reason = str(exc)
    out += events
    ev = ScheduleFired(
        at=now,
        schedule=rec.id,
        fire_time=t,
        trigger=kind,
        outcome="refused" if reason is not None else "started",
        task_id=task_id,
        workflow_id=workflow_id,
        reason=reason,
        advance=advance,
        next_fire=next_fire,
        missed=missed,
    )
    book.emit(ev, out)


def _task_for(spec: ScheduleSpec, task: TaskSpec, fire_time: float) -> TaskSpec:
    if spec.fire_time_arg is None:
        return task
    return msgspec.structs.replace(task, kwargs={**task.kwargs, spec.fire_time_arg: fire_time})


def _check_target(book: Book, spec: ScheduleSpec) -> None:
    """Refuse a target that could never be submitted (checked as a submission would be)."""
    if spec.task is not None:
        check_specs([_task_for(spec, spec.task, 0.0)], "spec.task", book.settings)
    elif spec.workflow is not None and not spec.workflow.nodes:
        raise InvalidRequestError("spec.workflow: no nodes", field="spec.workflow")


# -------------------------------------------------------------------------- handlers


def on_created(book: Book, ev: ScheduleCreated) -> None:
    rec = ScheduleRecord(
        id=ev.schedule,
        spec=ev.spec,
        created_at=ev.at,
        updated_at=ev.at,
        # The constant itself, so a replayed record omits the default as the live one does.
        source="code" if ev.source == "code" else "api",
        next_fire=ev.next_fire,
    )
    book.schedules.put(rec)


def on_updated(book: Book, ev: ScheduleUpdated) -> None:
    rec = book.schedules.get(ev.schedule)
    rec.spec = ev.spec
    rec.updated_at = ev.at
    rec.next_fire = ev.next_fire
    if ev.spec.overlap != "buffer_one":
        rec.buffered = None
    book.schedules.reindex(rec)


def on_deleted(book: Book, ev: ScheduleDeleted) -> None:
    book.schedules.drop(ev.schedule)


def on_paused(book: Book, ev: SchedulePaused) -> None:
    rec = book.schedules.get(ev.schedule)
    rec.paused = True
    rec.note = ev.note
    rec.updated_at = ev.at
    book.schedules.reindex(rec)


def on_resumed(book: Book, ev: ScheduleResumed) -> None:
    rec = book.schedules.get(ev.schedule)
    rec.paused = False
    rec.note = None
    rec.next_fire = ev.next_fire
    rec.updated_at = ev.at
    book.schedules.reindex(rec)


def on_fired(book: Book, ev: ScheduleFired) -> None:
    rec = book.schedules.get(ev.schedule)
    if ev.advance:
        rec.last_fire = ev.fire_time
        rec.next_fire = ev.next_fire
    if ev.trigger == "buffered":
        rec.buffered = None
    if ev.outcome == "buffered":
        rec.buffered = ev.fire_time
    running = active_runs(book, rec)
    run_id = ev.task_id or ev.workflow_id
    if run_id is not None:
        running.append(run_id)
        rec.fires += 1
        if ev.trigger != "manual":
            _remember_ran(rec, ev.fire_time)
    rec.running = running
    run = ScheduleRun(
        fire_time=ev.fire_time,
        at=ev.at,
        kind=ev.trigger,
        outcome=ev.outcome,
        task_id=ev.task_id,
        workflow_id=ev.workflow_id,
        reason=ev.reason,
    )
    rec.recent = [*rec.recent[-(MAX_RECENT - 1) :], run]
    book.schedules.reindex(rec)


def _remember_ran(rec: ScheduleRecord, fire_time: float) -> None:
    ran = rec.ran
    i = bisect.bisect_left(ran, fire_time)
    if i < len(ran) and ran[i] == fire_time:
        return
    ran.insert(i, fire_time)
    if len(ran) > MAX_RAN:
        del ran[: len(ran) - MAX_RAN]
