"""The schedule commands and queries of a ``SchedulerState`` (``state.schedules``).

Fire times are the master's to compute (the core reads no clock and no zone data): see
``schedules.py`` for what the core decides with them.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from . import schedules
from .book import Book
from .events import Event
from .schedule_records import ScheduleRecord, ScheduleSpec
from .waiting import unserved_warnings

__all__ = ["ScheduleCommands"]


class ScheduleCommands:
    """A view of one state's schedules; commands return events, as the state's do."""

    __slots__ = ("_book",)

    def __init__(self, book: Book) -> None:
        self._book = book

    def create(
        self,
        schedule_id: str,
        spec: ScheduleSpec,
        next_fire: float | None,
        now: float,
        source: str = "api",
    ) -> list[Event]:
        return schedules.create(self._book, schedule_id, spec, next_fire, now, source)

    def update(
        self,
        schedule_id: str,
        spec: ScheduleSpec,
        next_fire: float | None,
        now: float,
        if_updated_at: float | None = None,
    ) -> list[Event]:
        return schedules.update(self._book, schedule_id, spec, next_fire, now, if_updated_at)

    def delete(self, schedule_id: str, now: float) -> list[Event]:
        return schedules.delete(self._book, schedule_id, now)

    def pause(self, schedule_id: str, note: str | None, now: float) -> list[Event]:
        return schedules.pause(self._book, schedule_id, note, now)

    def resume(self, schedule_id: str, next_fire: float | None, now: float) -> list[Event]:
        return schedules.resume(self._book, schedule_id, next_fire, now)

    def fire(
        self,
        schedule_id: str,
        times: Sequence[float],
        after: float | None,
        now: float,
        skipped_before: int = 0,
    ) -> list[Event]:
        """Decide the due nominal fire ``times`` of a schedule; see ``schedules.fire_due``."""
        return schedules.fire_due(self._book, schedule_id, times, after, now, skipped_before)

    def trigger(self, schedule_id: str, now: float) -> list[Event]:
        return schedules.trigger(self._book, schedule_id, now)

    def backfill(
        self, schedule_id: str, times: Sequence[float], now: float, rerun: bool = False
    ) -> list[Event]:
        return schedules.backfill(self._book, schedule_id, times, now, rerun)

    def already_ran(self, schedule_id: str, times: Sequence[float]) -> list[float]:
        """Those of ``times`` a backfill leaves out: their run was started before."""
        return schedules.already_ran(self._book, schedule_id, times)

    def warnings(self, schedule_id: str) -> list[str]:
        """Why the schedule's runs would wait now: one line per task of its target that no
        live region may run (type, affinity, labels), as a submit of it would be told."""
        spec = self._book.schedules.get(schedule_id).spec
        if spec.task is not None:
            specs = [spec.task]
        elif spec.workflow is not None:
            specs = [node.spec for node in spec.workflow.nodes]
        else:
            specs = []
        return unserved_warnings(self._book, specs)

    def due(self, now: float, limit: int | None = None) -> list[ScheduleRecord]:
        """Unpaused schedules whose next fire (plus its jitter) is due, earliest first, at
        most ``limit`` (the records themselves: read them, never change them)."""
        return self._book.schedules.due(float(now), limit)

    def get(self, schedule_id: str) -> ScheduleRecord:
        """A copy of one schedule's record (NotFoundError if unknown)."""
        return _copy_schedule(self._book.schedules.get(schedule_id))

    def has(self, schedule_id: str) -> bool:
        return schedule_id in self._book.schedules

    def page(self, after: str | None, limit: int) -> tuple[list[ScheduleRecord], str | None]:
        """Copies of up to ``limit`` records with ids after ``after``, by id, and the cursor of
        the next page (None at the end)."""
        ids = self._book.schedules.ids_after(after, limit + 1)
        page = [_copy_schedule(self._book.schedules.get(i)) for i in ids[:limit]]
        return page, (ids[limit - 1] if len(ids) > limit else None)

    def all(self) -> list[ScheduleRecord]:
        """Copies of every schedule's record, by id."""
        return [_copy_schedule(r) for r in self._book.schedules.records()]

    def run_state(self, task_id: str | None, workflow_id: str | None) -> str | None:
        """The state now of a schedule's run (a task's state, or a workflow's running /
        succeeded / failed / cancelled), None when unknown or evicted."""
        if workflow_id is not None:
            wf = self._book.workflows.get(workflow_id)
            return None if wf is None else wf.state or "running"
        task = self._book.tasks.get(task_id) if task_id is not None else None
        return None if task is None else task.state.value


def _copy_schedule(rec: ScheduleRecord) -> ScheduleRecord:
    return msgspec.structs.replace(rec, running=list(rec.running), recent=list(rec.recent))
