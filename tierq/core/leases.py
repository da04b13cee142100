"""Lease bookkeeping for regions (held by the master) and workers (held by a region)."""

from __future__ import annotations

import heapq

import msgspec

from .model import RegionInfo

__all__ = ["LeaseTable", "RegionRecord", "RegionView"]


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
        """Renewals are logged at most about twice per lease period: only once half of it is
        gone. That keeps idle regions' polling out of the durable log."""
        return self.expires_at - now <= lease_seconds / 2.0


class RegionView(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    instance: str
    labels: tuple[str, ...]
    task_types: tuple[str, ...]
    lease_expires_at: float
    held: int


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
