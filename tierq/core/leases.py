"""Lease bookkeeping for regions (held by the master) and workers (held by a region)."""

from __future__ import annotations

import heapq

import msgspec

from ..errors import ConflictError, NotFoundError
from .model import RegionInfo, TaskSpec

__all__ = ["LeaseTable", "RegionBook", "RegionRecord", "RegionView"]


class RegionRecord:
    """A registered region: what it can run, until when its lease holds, what it holds."""

    __slots__ = ("expires_at", "held", "info", "last_renewed")

    def __init__(self, info: RegionInfo, at: float, lease_seconds: float) -> None:
        self.info = info
        self.expires_at = at + lease_seconds
        self.last_renewed = at
        #: Ids of tasks ASSIGNED to or RUNNING in this region (a set: a lease adds a batch
        #: with one C-level ``update``; read it sorted where order matters).
        self.held: set[str] = set()

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def instance(self) -> str:
        return self.info.instance

    def renew(self, at: float, lease_seconds: float) -> None:
        self.expires_at = max(self.expires_at, at + lease_seconds)
        self.last_renewed = at

    def needs_renewal(self, now: float, lease_seconds: float) -> bool:
        """A renewal is logged once a twentieth of the lease has gone since the last one.

        The region reports at least every tenth of its lease, and the logged renewal is at
        most a twentieth behind its last report: a region that dies loses its lease between
        0.85 and 1.0 lease after its death (not anywhere from half a lease on, as when only
        half-life renewals were logged), for about one small log entry per region per second.
        """
        return self.expires_at - now <= lease_seconds * 0.95


class RegionView(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    instance: str
    labels: tuple[str, ...]
    task_types: tuple[str, ...]
    lease_expires_at: float
    held: int


class RegionBook:
    """The master's registered regions, by name: their leases and the tasks each holds.

    It owns the records; the scheduler changes them only through these methods (from
    ``apply``), and the queries read them through ``records`` and ``held``."""

    __slots__ = ("_regions", "declared")

    def __init__(self) -> None:
        self._regions: dict[str, RegionRecord] = {}
        #: The options each task type declares, from the regions' registrations (the first
        #: region by name that declares a type wins); derived, rebuilt when regions change.
        self.declared: dict[str, TaskSpec] = {}

    def _index_declared(self) -> None:
        index: dict[str, TaskSpec] = {}
        for name in sorted(self._regions, reverse=True):
            index.update(self._regions[name].info.declared)
        self.declared = index

    def __len__(self) -> int:
        return len(self._regions)

    def __contains__(self, name: object) -> bool:
        return name in self._regions

    def get(self, name: str) -> RegionRecord | None:
        return self._regions.get(name)

    def require(self, name: str, instance: str) -> RegionRecord:
        """The record of ``name`` if ``instance`` is the registered one; NotFoundError or
        ConflictError otherwise (either way the region registers again)."""
        rec = self._regions.get(name)
        if rec is None:
            raise NotFoundError(f"region {name!r} is not registered", ids=(name,))
        if rec.instance != instance:
            raise ConflictError(
                f"region {name!r} is registered with instance {rec.instance!r}, not "
                f"{instance!r}; register again",
                ids=(name,),
            )
        return rec

    def records(self) -> list[RegionRecord]:
        """Every region, by name."""
        regions = self._regions
        return [regions[name] for name in sorted(regions)]

    def held(self, name: str, instance: str) -> list[str]:
        """The ids of the tasks held by region ``name`` if ``instance`` is registered, sorted."""
        rec = self._regions.get(name)
        if rec is None or rec.instance != instance:
            return []
        return sorted(rec.held)

    def held_counts(self) -> dict[str, int]:
        return {rec.name: len(rec.held) for rec in self.records()}

    def views(self) -> list[RegionView]:
        return [
            RegionView(
                name=rec.name,
                instance=rec.instance,
                labels=rec.info.labels,
                task_types=rec.info.task_types,
                lease_expires_at=rec.expires_at,
                held=len(rec.held),
            )
            for rec in self.records()
        ]

    def expiry_times(self) -> list[float]:
        return [rec.expires_at for rec in self._regions.values()]

    def register(self, info: RegionInfo, at: float, lease_seconds: float) -> None:
        """A new lease for ``info``; the same instance keeps what it holds."""
        old = self._regions.get(info.name)
        rec = RegionRecord(info, at, lease_seconds)
        if old is not None and old.instance == info.instance:
            rec.held = old.held
        self._regions[info.name] = rec
        if info.declared or (old is not None and old.info.declared):
            self._index_declared()

    def renew(self, name: str, instance: str, at: float, lease_seconds: float) -> None:
        rec = self._regions.get(name)
        if rec is not None and rec.instance == instance:
            rec.renew(at, lease_seconds)

    def expire(self, name: str, instance: str) -> bool:
        """Drop the region if ``instance`` is still the registered one; whether it was."""
        rec = self._regions.get(name)
        if rec is None or rec.instance != instance:
            return False
        del self._regions[name]
        if rec.info.declared:
            self._index_declared()
        return True

    def hold(self, name: str | None, task_id: str) -> None:
        rec = self._regions.get(name or "")
        if rec is not None:
            rec.held.add(task_id)

    def hold_all(self, name: str, task_ids: list[str]) -> None:
        rec = self._regions.get(name)
        if rec is not None:
            rec.held.update(task_ids)

    def release(self, name: str | None, task_id: str) -> None:
        rec = self._regions.get(name or "")
        if rec is not None:
            rec.held.discard(task_id)

    def restore(
        self, info: RegionInfo, last_renewed: float, expires_at: float, lease: float
    ) -> None:
        """Put back one region as a snapshot recorded it (its held set is rebuilt from tasks)."""
        rec = RegionRecord(info, last_renewed, lease)
        rec.expires_at = expires_at
        self._regions[info.name] = rec
        if info.declared:
            self._index_declared()


class LeaseTable:
    """Expiring leases by key, e.g. a region's worker leases. ``expired(now)`` pops due keys.

    Renewing pushes a new heap entry and leaves the old one to be skipped (lazy deletion), so
    grant, renew and expiry are all O(log n).
    """

    __slots__ = ("_expiry", "_heap")

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def __contains__(self, key: object) -> bool:
        return key in self._expiry

    def grant(self, key: str, now: float, ttl: float) -> float:
        """Grant or renew; returns the new expiry."""
        until = now + ttl
        self._expiry[key] = until
        heapq.heappush(self._heap, (until, key))
        if len(self._heap) > 2 * len(self._expiry) + 64:
            self._heap = [(t, k) for k, t in self._expiry.items()]
            heapq.heapify(self._heap)
        return until

    def release(self, key: str) -> bool:
        return self._expiry.pop(key, None) is not None

    def expires_at(self, key: str) -> float | None:
        return self._expiry.get(key)

    def expired(self, now: float) -> list[str]:
        """Remove and return the keys whose lease ended at or before ``now``."""
        out: list[str] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            until, key = heapq.heappop(heap)
            if self._expiry.get(key) == until:
                del self._expiry[key]
                out.append(key)
        return out

    def next_expiry(self) -> float | None:
        heap = self._heap
        while heap and self._expiry.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None
