"""The durable intake, applied: what clients published, in order, with the ids they made.

A client that submits through the intake (``<prefix>.intake``, a JetStream stream of its own)
has its acknowledgement from the stream, with a task id it made itself (``ids.client_id``). The
master reads the entries in stream order and hands them here in batches. Each entry becomes a
task exactly as ``submit`` would make it, or, when the master cannot accept it (its queue is
full, a spec its rules refuse, a parent it does not know), a DEAD task carrying the reason
(``TaskRefused``): the client already holds the id, so the id must answer.

The batch ends with ``IntakeApplied(upto)``, and the master appends all of it at once: the
entries' tasks and the marker are in the log together or not at all. ``book.intake_seq`` is
therefore exactly how far the log has read the intake, after a restart or a failover too, and
an entry read again (at or below it) is skipped: applied once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import msgspec

from ..errors import InvalidRequestError, TierqError
from .book import DEAD, PENDING, Book
from .declared import with_declared
from .events import Event, IntakeApplied, TaskRefused, TaskSubmitted
from .ids import client_id_ms
from .model import TaskSpec
from .submission import admit_specs, check_parents, check_refs, on_submitted, submitted_event
from .validate import check_specs

__all__ = ["IntakeItem", "apply_intake", "on_intake_applied", "on_refused"]

#: The name a refused entry is recorded under when its spec could not even be decoded.
UNDECODABLE = "tierq.undecodable"


class IntakeItem(NamedTuple):
    """One intake entry as the master read it."""

    #: Its sequence in the intake stream.
    seq: int
    #: The task id the client made (checked here).
    id: str
    #: The spec, or None when it could not be decoded (``problem`` says why).
    spec: TaskSpec | None
    problem: str | None = None


def apply_intake(book: Book, items: Sequence[IntakeItem], now: float) -> list[Event]:
    """Accept or refuse each entry after ``book.intake_seq``, in order; end with the marker.

    Returns no events when every entry was applied before. An entry whose id is not one a
    client makes is skipped (there is no id to answer under); the marker still moves past it.
    """
    out: list[Event] = []
    upto = book.intake_seq
    now = float(now)
    for item in items:
        if item.seq <= upto:
            continue  # read again: applied already
        upto = item.seq
        tid = item.id
        if client_id_ms(tid) is None or tid in book.tasks:
            continue
        if item.spec is None:
            reason = f"the intake entry could not be decoded: {item.problem}"
            book.emit(
                TaskRefused(at=now, id=tid, spec=TaskSpec(name=UNDECODABLE), reason=reason), out
            )
            continue
        try:
            event = _accept(book, item.spec, tid, now)
        except TierqError as exc:
            book.emit(TaskRefused(at=now, id=tid, spec=_refusable(item.spec), reason=str(exc)), out)
        else:
            book.emit(event, out)
    if upto > book.intake_seq:
        book.emit(IntakeApplied(at=now, upto=upto), out)
    return out


def _accept(book: Book, spec: TaskSpec, tid: str, now: float) -> TaskSubmitted:
    """The ``task_submitted`` event ``submit`` would make for ``spec``, under ``tid``; raises
    what ``submit`` would raise, before any change."""
    spec = with_declared(book, [spec])[0]
    [(spec, refs)] = check_specs([spec], "spec", book.settings)
    if spec.idempotency_key is not None:
        raise InvalidRequestError(
            "a task with an idempotency key is submitted by request, not through the intake",
            field="spec.idempotency_key",
        )
    parents: tuple[str, ...] = ()
    if spec.depends_on:
        parents = tuple(dict.fromkeys(spec.depends_on))
        check_parents(book, parents, "spec.depends_on")
    if refs:
        check_refs(spec, parents, {}, "spec")
    admit_specs(book, [spec])
    return submitted_event(book, tid, spec, parents, refs, now)


def _refusable(spec: TaskSpec) -> TaskSpec:
    """The spec a refused task keeps: as sent, without what would index it as live work."""
    return msgspec.structs.replace(
        spec, idempotency_key=None, depends_on=(), deadline=None, run_at=None
    )


def on_refused(book: Book, ev: TaskRefused) -> None:
    """A refused entry: recorded, then DEAD at once with the reason."""
    on_submitted(book, TaskSubmitted(at=ev.at, id=ev.id, spec=ev.spec, state=PENDING))
    task = book.tasks[ev.id]
    task.reason = f"refused: {ev.reason}"
    book.totals.dead += 1
    book.leave(task)
    task.state = DEAD
    book.enter(task, ev.at)


def on_intake_applied(book: Book, ev: IntakeApplied) -> None:
    book.intake_seq = ev.upto
