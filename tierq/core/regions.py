"""Region leases: registration, heartbeats, expiry, and what a region loses with its lease.

A region holds its lease for ``region_lease_seconds`` from its last renewal; a new instance of
a known name, or an expired lease, re-queues what the region held as lost attempts (counted
retries). The records themselves live in ``leases.RegionBook``.
"""

from __future__ import annotations

import msgspec

from ..errors import InvalidRequestError
from .book import HELD_STATES, Book
from .declared import check_declared
from .events import Event, RegionExpired, RegionHeartbeat, RegionRegistered
from .leases import RegionRecord
from .model import ErrorSummary, RegionInfo
from .outcomes import fail
from .validate import check_labels, check_name, check_text, check_token
from .workflows import finish_workflows

__all__ = [
    "expire_regions",
    "on_region_expired",
    "on_region_heartbeat",
    "on_region_registered",
    "region_heartbeat",
    "register_region",
]


def register_region(book: Book, info: RegionInfo, now: float) -> list[Event]:
    """Register (or re-register) a region. A new instance of a known name re-queues, as
    lost attempts, everything the old instance held."""
    now = float(now)
    if not isinstance(info, RegionInfo):
        raise InvalidRequestError("info: expected region info", field="info")
    check_token(info.name, "name", region=True)
    check_text(info.instance, "instance", 128)
    labels = check_labels(info.labels, "labels")
    if not isinstance(info.task_types, tuple | list) or len(info.task_types) > 10_000:
        raise InvalidRequestError("task_types: at most 10000 task names", field="task_types")
    for i, name in enumerate(info.task_types):
        check_name(name, f"task_types[{i}]")
    types = tuple(info.task_types)
    declared = check_declared(info.declared, types, book.settings)
    if labels is not info.labels or types is not info.task_types or declared is not info.declared:
        info = msgspec.structs.replace(info, labels=labels, task_types=types, declared=declared)
    out: list[Event] = []
    old = book.regions.get(info.name)
    if old is not None and old.instance != info.instance:
        lose_held(
            book, old, f"region {info.name} restarted (instance {old.instance} replaced)", now, out
        )
    book.emit(RegionRegistered(at=now, info=info), out)
    finish_workflows(book, now, out)
    return out


def region_heartbeat(book: Book, name: str, instance: str, now: float) -> list[Event]:
    """Renew a region's lease; logged once a twentieth of it has gone (see leases.py)."""
    now = float(now)
    rec = book.regions.require(name, instance)
    out: list[Event] = []
    if rec.needs_renewal(now, book.settings.region_lease_seconds):
        book.emit(RegionHeartbeat(at=now, name=name, instance=instance), out)
    return out


def lose_held(book: Book, rec: RegionRecord, why: str, now: float, out: list[Event]) -> None:
    tasks = book.tasks
    for tid in sorted(rec.held):
        task = tasks[tid]
        if task.state not in HELD_STATES:  # cancelled by an earlier one's failure policy
            continue
        error = ErrorSummary(type="Lost", message=why, lost=True)
        fail(book, task, error, None, now, out)


def on_region_registered(book: Book, ev: RegionRegistered) -> None:
    info = ev.info
    book.regions.register(info, ev.at, book.settings.region_lease_seconds)
    book.placement.forget_region(info.name)


def on_region_heartbeat(book: Book, ev: RegionHeartbeat) -> None:
    book.regions.renew(ev.name, ev.instance, ev.at, book.settings.region_lease_seconds)


def on_region_expired(book: Book, ev: RegionExpired) -> None:
    if book.regions.expire(ev.name, ev.instance):
        book.placement.forget_region(ev.name)


def expire_regions(book: Book, now: float, out: list[Event]) -> None:
    """Regions whose lease ended lose what they held (re-queued as lost attempts)."""
    for rec in book.regions.records():
        if rec.expires_at <= now:
            lose_held(book, rec, f"region {rec.name} lease expired", now, out)
            book.emit(RegionExpired(at=now, name=rec.name, instance=rec.instance), out)
