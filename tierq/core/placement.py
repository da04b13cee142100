"""Placement classes: tasks that the same regions may run share one heap.

A class is (task name, region affinity, required labels, resource). A region can run a class
when the name is among its task types, the affinity is None or the region itself, and its labels
include the required ones. A lease merges the heads of the eligible classes (a k-way merge), so
it never scans tasks it cannot take. The resource is part of the class so that an open resource
breaker parks exactly the tasks that need that resource.
"""

from __future__ import annotations

from collections.abc import Iterator

from .model import RegionInfo, TaskSpec
from .readyq import ReadyQueue

__all__ = ["ClassKey", "PlacementIndex", "class_key"]

#: (name, region affinity, labels, resource)
ClassKey = tuple[str, str | None, tuple[str, ...], str | None]


def class_key(spec: TaskSpec) -> ClassKey:
    return (spec.name, spec.region, spec.labels, spec.resource)


def can_run(info: RegionInfo, key: ClassKey) -> bool:
    name, region, labels, _ = key
    if region is not None and region != info.name:
        return False
    if name not in info.task_types:
        return False
    return all(label in info.labels for label in labels)


class _Eligible:
    __slots__ = ("info", "keys", "seen")

    def __init__(self, info: RegionInfo) -> None:
        self.info = info
        self.keys: list[ClassKey] = []
        self.seen = 0


class PlacementIndex:
    """One ready queue per class, created on first use and kept (classes are few)."""

    __slots__ = ("_eligible", "_keys", "_last_key", "_last_queue", "_queues", "_rate")

    def __init__(self, rate: float = 0.0) -> None:
        self._rate = rate
        self._queues: dict[ClassKey, ReadyQueue] = {}
        #: The class looked up last and its queue: consecutive tasks mostly share a class, and
        #: comparing four fields by identity is cheaper than building and hashing the tuple.
        self._last_key: ClassKey | None = None
        self._last_queue: ReadyQueue | None = None
        #: Classes in creation order, so a region's eligible list grows incrementally.
        self._keys: list[ClassKey] = []
        self._eligible: dict[str, _Eligible] = {}

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def queue(self, key: ClassKey) -> ReadyQueue:
        q = self._queues.get(key)
        if q is None:
            # The scheduler re-pushes everything when the aging rate changes, so a queue is
            # made for one rate.
            q = self._queues[key] = ReadyQueue(self._rate)
            self._keys.append(key)
        return q

    def queue_of(self, spec: TaskSpec) -> ReadyQueue:
        """The queue of ``spec``'s class (created on first use)."""
        last = self._last_key
        if (
            last is not None
            and last[0] is spec.name
            and last[1] is spec.region
            and last[2] is spec.labels
            and last[3] is spec.resource
        ):
            q = self._last_queue
            assert q is not None
            return q
        key = (spec.name, spec.region, spec.labels, spec.resource)
        q = self.queue(key)
        self._last_key = key
        self._last_queue = q
        return q

    def get(self, key: ClassKey) -> ReadyQueue | None:
        return self._queues.get(key)

    def items(self) -> Iterator[tuple[ClassKey, ReadyQueue]]:
        return iter(self._queues.items())

    def eligible(self, info: RegionInfo) -> list[ClassKey]:
        """Classes ``info`` can run; cached per region and extended as classes appear."""
        entry = self._eligible.get(info.name)
        if entry is None or entry.info != info:
            entry = self._eligible[info.name] = _Eligible(info)
        keys = self._keys
        if entry.seen < len(keys):
            for key in keys[entry.seen :]:
                if can_run(info, key):
                    entry.keys.append(key)
            entry.seen = len(keys)
        return entry.keys

    def forget_region(self, name: str) -> None:
        self._eligible.pop(name, None)
