"""Why a ready task is not running: no live region serves its type, or breakers hold it.

Read-only, like ``scheduler_queries``: a submission's reply warns when no live region has a
worker for a task's type, and a ready task's record, as a query returns it, says why it
waits. A task of an unknown name or behind an open breaker otherwise sat in ``ready`` with
nothing to say why.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .book import Book
from .breaker import BreakerState
from .model import RegionInfo, Task, TaskSpec, TaskState
from .placement import can_run, class_key

__all__ = ["unserved_message", "unserved_warnings", "waiting_reason"]

#: At most this many warnings in one reply (a batch of many unknown names).
MAX_WARNINGS = 20


def _iso(at: float) -> str:
    """``at`` (seconds since the epoch) as an ISO 8601 UTC time, to the second.

    Computed, not asked of ``datetime`` (the core imports no clock): days to a civil date as
    in Howard Hinnant's ``civil_from_days``.
    """
    secs = int(at)
    days, rest = divmod(secs, 86_400)
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    hh, rest = divmod(rest, 3600)
    mm, ss = divmod(rest, 60)
    return f"{year:04d}-{month:02d}-{day:02d}T{hh:02d}:{mm:02d}:{ss:02d}Z"


def _placement(spec: TaskSpec) -> str:
    parts = []
    if spec.region is not None:
        parts.append(f"region {spec.region!r}")
    if spec.labels:
        parts.append("labels " + ", ".join(spec.labels))
    return f" ({'; '.join(parts)})" if parts else ""


def _no_worker(book: Book, spec: TaskSpec) -> str | None:
    return unserved_message([rec.info for rec in book.regions.records()], spec)


def unserved_message(regions: Sequence[RegionInfo], spec: TaskSpec) -> str | None:
    """The warning if none of the live ``regions`` may run ``spec`` (type, affinity,
    labels), else None. (A client that submits through the durable intake asks it of the
    regions the master listed.)"""
    key = class_key(spec)
    if any(can_run(info, key) for info in regions):
        return None
    live = ", ".join(sorted(info.name for info in regions)) or "none"
    return (
        f"no live worker runs task type {spec.name!r} in any eligible region"
        f"{_placement(spec)}; live regions: {live}. It waits until a worker that has this "
        "task registers (check the name, and that a worker loads its module)"
    )


def unserved_warnings(book: Book, specs: Iterable[TaskSpec]) -> list[str]:
    """One warning per distinct placement that no live region can run now."""
    out: list[str] = []
    seen: set[tuple[str, str | None, tuple[str, ...]]] = set()
    for spec in specs:
        key = (spec.name, spec.region, spec.labels)
        if key in seen:
            continue
        seen.add(key)
        message = _no_worker(book, spec)
        if message is not None:
            out.append(message)
            if len(out) >= MAX_WARNINGS:
                break
    return out


def waiting_reason(book: Book, task: Task, now: float) -> str | None:
    """Why a READY task is not being handed out, or None when nothing holds it."""
    if task.state is not TaskState.READY:
        return None
    spec = task.spec
    message = _no_worker(book, spec)
    if message is not None:
        return message
    key = class_key(spec)
    cooldown = book.settings.breaker.cooldown
    held: list[str] = []
    for rec in book.regions.records():
        if not can_run(rec.info, key):
            continue
        blocking = []
        for bkey in book.breakers.keys_of(rec.name, spec.name, spec.resource):
            b = book.breakers.get(bkey)
            if b is None or b.allows():
                continue
            if b.state is BreakerState.OPEN and b.opened_at is not None:
                half = b.opened_at + cooldown
                when = f"open since {_iso(b.opened_at)}, half-opens at {_iso(half)}"
                when += f" (in {max(0.0, half - now):.0f} s)"
            else:
                when = "half-open, its one probe is running"
            blocking.append(f"circuit breaker {b.key} is {when}")
        if not blocking:
            return None  # this region may take it: it waits only for a free slot
        held.extend(blocking)
    return "; ".join(dict.fromkeys(held)) if held else None
