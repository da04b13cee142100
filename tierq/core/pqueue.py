"""Indexed max-priority queue with time-free aging, O(log n) re-key and FIFO among equals.

Effective priority at time ``t`` is ``priority + rate * (t - enqueued_at)``. With one ``rate`` for
every entry that orders exactly like the time-free ``priority - rate * enqueued_at``, so waiting
entries rise without ever being re-keyed. The heap stores the negation,
``key = rate * enqueued_at - priority``, because :mod:`heapq` is a min-heap; ties break on ``seq``,
the insertion sequence, which gives FIFO among equals.

Removal and re-keying use lazy deletion: the index maps each id to its one live entry tuple, and
an entry in the heap that is no longer the live one is skipped when it reaches the top. The heap is
rebuilt when stale entries outnumber live ones, so every operation is O(log n) amortised. The C
``heapq`` over plain tuples beats a hand-written indexed binary heap (positions kept per id) in
CPython; ``benchmarks/core_bench.py`` measures both. ``seq`` values are unique, so the pop order depends only on the entries and
never on the heap's internal layout: a queue rebuilt from a snapshot pops in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from heapq import heapify, heappop, heappush

import msgspec

__all__ = ["Entry", "IndexedPriorityQueue", "QueueStatistics"]

#: (key, seq, id, priority, enqueued_at); key = rate * enqueued_at - priority, smaller pops first.
Entry = tuple[float, int, str, float, float]

_COMPACT_SLACK = 64


class QueueStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one queue's counters (trio-style ``statistics()`` record)."""

    size: int
    heap_entries: int
    pushes: int
    pops: int
    updates: int
    removes: int
    compactions: int


class IndexedPriorityQueue:
    """Max-priority queue keyed by id. Higher effective priority pops first; FIFO among equals."""

    __slots__ = (
        "_compactions",
        "_heap",
        "_index",
        "_next_seq",
        "_pops",
        "_pushes",
        "_rate",
        "_removes",
        "_updates",
    )

    def __init__(self, rate: float = 0.0) -> None:
        self._heap: list[Entry] = []
        self._index: dict[str, Entry] = {}
        self._rate = rate
        self._next_seq = 0
        self._pushes = 0
        self._pops = 0
        self._updates = 0
        self._removes = 0
        self._compactions = 0

    def __len__(self) -> int:
        return len(self._index)

    def __bool__(self) -> bool:
        return bool(self._index)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    @property
    def rate(self) -> float:
        return self._rate

    def push(
        self, item_id: str, priority: float, enqueued_at: float = 0.0, seq: int | None = None
    ) -> None:
        """Add ``item_id``; ``seq`` orders equals (defaults to this queue's own counter)."""
        if item_id in self._index:
            raise KeyError(f"{item_id!r} is already queued")
        if seq is None:
            seq = self._next_seq
            self._next_seq += 1
        elif seq >= self._next_seq:
            self._next_seq = seq + 1
        entry = (self._rate * enqueued_at - priority, seq, item_id, priority, enqueued_at)
        self._index[item_id] = entry
        heappush(self._heap, entry)
        self._pushes += 1

    def head(self) -> Entry | None:
        """The live entry that would pop next, or None; drops stale entries on the way."""
        heap = self._heap
        index = self._index
        while heap:
            entry = heap[0]
            if index.get(entry[2]) is entry:
                return entry
            heappop(heap)
        return None

    def peek(self) -> str | None:
        entry = self.head()
        return None if entry is None else entry[2]

    def pop(self) -> str:
        """Remove and return the id with the highest effective priority; IndexError if empty."""
        heap = self._heap
        index = self._index
        while heap:
            entry = heappop(heap)
            item_id = entry[2]
            if index.get(item_id) is entry:
                del index[item_id]
                self._pops += 1
                return item_id
        raise IndexError("pop from an empty queue")

    def remove(self, item_id: str) -> bool:
        """Drop ``item_id`` if queued; returns whether it was."""
        if self._index.pop(item_id, None) is None:
            return False
        self._removes += 1
        self._maybe_compact()
        return True

    def update(self, item_id: str, priority: float) -> None:
        """Re-key ``item_id`` in O(log n); keeps its enqueue time and its place among equals."""
        old = self._index[item_id]
        entry = (self._rate * old[4] - priority, old[1], item_id, priority, old[4])
        self._index[item_id] = entry
        heappush(self._heap, entry)
        self._updates += 1
        self._maybe_compact()

    def priority(self, item_id: str) -> float:
        return self._index[item_id][3]

    def entry(self, item_id: str) -> Entry:
        return self._index[item_id]

    def set_rate(self, rate: float) -> None:
        """Change the aging rate: every key changes, so this rebuilds the heap (O(n))."""
        self._rate = rate
        self._index = {
            e[2]: (rate * e[4] - e[3], e[1], e[2], e[3], e[4]) for e in self._index.values()
        }
        self._rebuild()

    def entries(self) -> Iterator[Entry]:
        """Live entries in no particular order."""
        return iter(self._index.values())

    def ordered(self) -> list[Entry]:
        """Live entries in pop order (O(n log n))."""
        return sorted(self._index.values())

    def extend_entries(self, entries: Iterable[Entry]) -> None:
        """Bulk-load entries (snapshot restore); keys are recomputed with this queue's rate."""
        for e in entries:
            entry = (self._rate * e[4] - e[3], e[1], e[2], e[3], e[4])
            self._index[e[2]] = entry
            if e[1] >= self._next_seq:
                self._next_seq = e[1] + 1
        self._rebuild()

    def statistics(self) -> QueueStatistics:
        return QueueStatistics(
            size=len(self._index),
            heap_entries=len(self._heap),
            pushes=self._pushes,
            pops=self._pops,
            updates=self._updates,
            removes=self._removes,
            compactions=self._compactions,
        )

    def _maybe_compact(self) -> None:
        if len(self._heap) > 2 * len(self._index) + _COMPACT_SLACK:
            self._rebuild()

    def _rebuild(self) -> None:
        self._heap = list(self._index.values())
        heapify(self._heap)
        self._compactions += 1
