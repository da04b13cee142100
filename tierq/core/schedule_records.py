"""Schedules as data: what a user declares (``ScheduleSpec``), what the master keeps
(``ScheduleRecord``, with its recent runs) and the keeper of them (``ScheduleBook``).

The core never computes a fire time: cron, interval and time-zone arithmetic needs a clock
library, so the master computes fire times (``tierq/master/firetimes.py``) and hands them to
the commands in ``schedules.py``. What the core stores is therefore plain numbers: the next
nominal fire time, and the last one fired, which is the key that makes each fire time fire
once (a fire at or before it is ignored, on replay and after a failover alike).
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from heapq import heappop, heappush
from typing import Literal

import msgspec

from ..errors import InvalidRequestError, NotFoundError
from .model import TaskSpec, WorkflowSpec
from .validate import check_time

#: The default retry policy object of a task spec (compared by identity when encoded).
_DEFAULT_RETRY = next(f.default for f in msgspec.structs.fields(TaskSpec) if f.name == "retry")

__all__ = [
    "CATCHUP_MODES",
    "MAX_RAN",
    "MAX_RECENT",
    "MAX_SPAN",
    "MIN_EVERY",
    "OVERLAP_POLICIES",
    "CatchupMode",
    "OverlapPolicy",
    "ScheduleBook",
    "ScheduleRecord",
    "ScheduleRun",
    "ScheduleSpec",
    "check_schedule_id",
    "check_schedule_spec",
    "jitter_offset",
]

#: skip: no new run while the previous one is unfinished; buffer_one: keep (at most) one fire
#: to start when it finishes; allow_all: always start; cancel_other: cancel it, then start.
OverlapPolicy = Literal["skip", "buffer_one", "allow_all", "cancel_other"]
OVERLAP_POLICIES: tuple[str, ...] = ("skip", "buffer_one", "allow_all", "cancel_other")
#: After downtime, fire every missed time inside the catch-up window in order, or only the
#: latest of them.
CatchupMode = Literal["all", "latest"]
CATCHUP_MODES: tuple[str, ...] = ("all", "latest")
#: Runs kept per schedule (the newest).
MAX_RECENT = 20
#: Fire times remembered per schedule as run (the latest), so a backfill skips them.
MAX_RAN = 10_000
#: The shortest interval, seconds: cron's own step (six fields) and the master's tick; a
#: shorter one would flood the queue with runs rather than schedule work.
MIN_EVERY = 1.0
#: The longest interval, jitter and catch-up window, seconds (a leap year; as the REST API).
MAX_SPAN = 366 * 86400.0
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


class ScheduleSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """When and what to run. Exactly one of ``cron`` / ``every``, one of ``task`` /
    ``workflow``."""

    #: A cron expression: 5 fields, or 6 with seconds first; names (``MON``, ``JAN``) and
    #: aliases (``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@yearly``) allowed.
    cron: str | None = None
    #: IANA time zone the cron expression is read in.
    timezone: str = "UTC"
    #: A fixed interval, seconds: fires at ``offset + k * every`` seconds after the epoch.
    every: float | None = None
    offset: float = 0.0
    #: Each fire is delayed by a deterministic amount in ``[0, jitter)`` seconds.
    jitter: float = 0.0
    #: No fire before ``start_at`` nor after ``end_at`` (epoch seconds).
    start_at: float | None = None
    end_at: float | None = None
    task: TaskSpec | None = None
    workflow: WorkflowSpec | None = None
    #: The task kwarg (of a task target) that receives the fire time, epoch seconds.
    fire_time_arg: str | None = None
    overlap: OverlapPolicy = "skip"
    #: After downtime, missed fire times younger than this many seconds still fire.
    catchup_window: float = 60.0
    catchup: CatchupMode = "all"


class ScheduleRun(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One fire time and what came of it."""

    fire_time: float
    #: When it was decided.
    at: float
    #: scheduled | manual (trigger) | backfill | buffered (a buffered fire, started late)
    kind: str
    #: started | skipped (overlap) | buffered | missed (outside the catch-up window) | refused
    outcome: str
    task_id: str | None = None
    workflow_id: str | None = None
    reason: str | None = None


class ScheduleRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    spec: ScheduleSpec
    created_at: float
    updated_at: float
    #: "api" (made at run time) or "code" (declared by a worker's app).
    source: str = "api"
    paused: bool = False
    note: str | None = None
    #: The next nominal fire time (None: no more fires, e.g. past ``end_at``).
    next_fire: float | None = None
    #: The last scheduled fire time decided: fires at or before it are not fired again.
    last_fire: float | None = None
    #: A fire held by the buffer_one policy until the running one finishes.
    buffered: float | None = None
    #: Task and workflow ids this schedule started that may still be running.
    running: list[str] = []
    recent: list[ScheduleRun] = []
    fires: int = 0
    #: Fire times whose run was started (scheduled, backfilled or buffered), ascending, the
    #: latest ``MAX_RAN``: a backfill does not start them again unless asked to.
    ran: list[float] = []


class ScheduleBook:
    """Every schedule by id, and a heap of their due times; changed only from the event
    handlers in ``schedules.py`` (which call :meth:`reindex` after changing a record)."""

    __slots__ = ("_buffered", "_due", "_heap", "_records")

    def __init__(self) -> None:
        self._records: dict[str, ScheduleRecord] = {}
        #: The due time of each unpaused schedule that has a next fire (derived, not stored).
        self._due: dict[str, float] = {}
        #: (due time, id), lazily cleaned: an entry whose time is not ``_due[id]`` is stale.
        self._heap: list[tuple[float, str]] = []
        #: Schedules holding a buffered fire (derived).
        self._buffered: set[str] = set()

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, schedule_id: object) -> bool:
        return schedule_id in self._records

    def get(self, schedule_id: str) -> ScheduleRecord:
        rec = self._records.get(schedule_id)
        if rec is None:
            raise NotFoundError(f"no schedule {schedule_id!r}", ids=(schedule_id,))
        return rec

    def put(self, rec: ScheduleRecord) -> None:
        self._records[rec.id] = rec
        self.reindex(rec)

    def drop(self, schedule_id: str) -> None:
        self._records.pop(schedule_id, None)
        self._due.pop(schedule_id, None)
        self._buffered.discard(schedule_id)

    def reindex(self, rec: ScheduleRecord) -> None:
        """Index ``rec``'s due time (and buffered fire) after a change."""
        if rec.buffered is None:
            self._buffered.discard(rec.id)
        else:
            self._buffered.add(rec.id)
        due = self.due_time(rec)
        if due is None:
            self._due.pop(rec.id, None)
        elif self._due.get(rec.id) != due:
            self._due[rec.id] = due
            heappush(self._heap, (due, rec.id))

    def records(self) -> list[ScheduleRecord]:
        """Every record, by id (the snapshot's order)."""
        return [self._records[k] for k in sorted(self._records)]

    def ids_after(self, after: str | None, limit: int) -> list[str]:
        """Up to ``limit`` ids after ``after`` (all from the first without it), sorted."""
        ids = sorted(self._records)
        start = 0 if after is None else bisect_right(ids, after)
        return ids[start : start + limit]

    def restore(self, records: list[ScheduleRecord]) -> None:
        self._records = {r.id: r for r in records}
        self._due = {}
        self._heap = []
        self._buffered = set()
        for rec in records:
            self.reindex(rec)

    @staticmethod
    def due_time(rec: ScheduleRecord) -> float | None:
        """When ``rec``'s next fire is due (its time plus its jitter), or None."""
        if rec.paused or rec.next_fire is None:
            return None
        return rec.next_fire + jitter_offset(rec.id, rec.next_fire, rec.spec.jitter)

    def _clean(self) -> None:
        heap, due = self._heap, self._due
        while heap and due.get(heap[0][1]) != heap[0][0]:
            heappop(heap)

    def due(self, now: float, limit: int | None = None) -> list[ScheduleRecord]:
        """Unpaused schedules whose next fire is due at ``now``, earliest first (by id among
        equals), at most ``limit`` of them."""
        heap, due = self._heap, self._due
        found: list[tuple[float, str]] = []
        self._clean()
        while heap and heap[0][0] <= now and (limit is None or len(found) < limit):
            entry = heappop(heap)
            if due.get(entry[1]) == entry[0]:
                found.append(entry)
            self._clean()
        for entry in found:
            heappush(heap, entry)
        return [self._records[i] for _, i in found]

    def next_due(self) -> float | None:
        self._clean()
        return self._heap[0][0] if self._heap else None

    def buffered(self) -> list[ScheduleRecord]:
        return [self._records[k] for k in sorted(self._buffered)]


def jitter_offset(schedule_id: str, fire_time: float, jitter: float) -> float:
    """The delay of one fire in ``[0, jitter)``: a hash of (schedule, fire time), so every
    master (and a replay) computes the same one without storing it."""
    if jitter <= 0.0:
        return 0.0
    digest = hashlib.blake2b(f"{schedule_id}|{fire_time!r}".encode(), digest_size=8).digest()
    return jitter * (int.from_bytes(digest, "big") / 2.0**64)


def check_schedule_id(value: object) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidRequestError(
            "schedule id: 1-128 characters of letters, digits, '_', '.', ':' or '-'", field="id"
        )
    return value


def _check_number(
    value: object, field: str, *, positive: bool = False, low: float = 0.0, high: float = MAX_SPAN
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InvalidRequestError(f"{field}: expected a number", field=field)
    if value < 0 or (positive and value == 0) or value in (float("inf"), float("-inf")):
        raise InvalidRequestError(f"{field}: must be {'> 0' if positive else '>= 0'}", field=field)
    if not low <= value <= high:
        raise InvalidRequestError(
            f"{field}: must be between {low:g} and {high:,.0f} seconds, got {value:g}", field=field
        )
    return float(value)


def check_schedule_spec(spec: object) -> ScheduleSpec:
    """The shape of a spec (the master checks the cron expression and the zone)."""
    if not isinstance(spec, ScheduleSpec):
        raise InvalidRequestError("schedule: expected a schedule spec", field="spec")
    if (spec.cron is None) == (spec.every is None):
        raise InvalidRequestError("schedule: give exactly one of cron and every", field="cron")
    if spec.every is not None:
        every = _check_number(spec.every, "every", positive=True, low=MIN_EVERY)
        offset = _check_number(spec.offset, "offset")
        if offset >= every:
            raise InvalidRequestError("offset: must be smaller than every", field="offset")
    _check_number(spec.jitter, "jitter")
    _check_number(spec.catchup_window, "catchup_window")
    for name in ("start_at", "end_at"):
        check_time(getattr(spec, name), name)
    if spec.start_at is not None and spec.end_at is not None and spec.end_at <= spec.start_at:
        raise InvalidRequestError("end_at: must be after start_at", field="end_at")
    if (spec.task is None) == (spec.workflow is None):
        raise InvalidRequestError("schedule: give exactly one of task and workflow", field="task")
    if spec.overlap not in OVERLAP_POLICIES:
        raise InvalidRequestError(f"overlap: one of {', '.join(OVERLAP_POLICIES)}", field="overlap")
    if spec.catchup not in CATCHUP_MODES:
        raise InvalidRequestError(f"catchup: one of {', '.join(CATCHUP_MODES)}", field="catchup")
    target_key = spec.task.idempotency_key if spec.task else None
    if spec.workflow is not None:
        target_key = spec.workflow.idempotency_key
    if target_key is not None:
        raise InvalidRequestError(
            "a scheduled target has no idempotency key: each fire is one run already",
            field="task.idempotency_key",
        )
    if spec.fire_time_arg is not None and (spec.task is None or not spec.fire_time_arg):
        raise InvalidRequestError(
            "fire_time_arg: a kwarg name, for a task target only", field="fire_time_arg"
        )
    return _canonical(spec)


def _canonical(spec: ScheduleSpec) -> ScheduleSpec:
    # Numbers as floats, so the event's encoding is the replay's (60 and 60.0 differ there),
    # and values equal to a default as the default itself: ``omit_defaults`` omits by
    # identity, so an equal copy would be written out, and a spec read back would differ.
    changes: dict[str, object] = {}
    for field in msgspec.structs.fields(spec):
        value = getattr(spec, field.name)
        if isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if value == field.default and type(value) is type(field.default):
            value = field.default
        changes[field.name] = value
    task = spec.task
    if task is not None and task.retry == _DEFAULT_RETRY and task.retry is not _DEFAULT_RETRY:
        changes["task"] = msgspec.structs.replace(task, retry=_DEFAULT_RETRY)
    return ScheduleSpec(**changes)  # type: ignore[arg-type]
