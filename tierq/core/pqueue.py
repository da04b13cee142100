"""Indexed max-priority queue with time-free aging, O(log n) re-key and FIFO among equals.

Effective priority at time ``t`` is ``priority + rate * (t - enqueued_at)``. With one ``rate`` for
every entry that orders exactly like the time-free ``priority - rate * enqueued_at``, so waiting
entries rise without ever being re-keyed.

Each entry is one Python int, ``K = q * SPAN + seq``: ``q`` is the negated time-free priority in
fixed point (``round((rate * enqueued_at - priority) * SCALE)``, so smaller pops first) and
``seq`` the insertion sequence, which breaks ties FIFO. :mod:`heapq` compares such ints directly;
the obvious ``(key, seq, id)`` tuples cost about three comparisons each and pointer chasing, and
measured 3x slower per pop on a million entries (``benchmarks/core_bench.py``). Resolution is
``1 / SCALE`` (about 1e-6) priority points; entries closer than that are served FIFO.

Removal and re-keying use lazy deletion: ``_ids`` maps each live key to its id, and a key popped
from the heap that is no longer live is skipped. The heap is rebuilt when stale keys outnumber
live ones, so every operation is O(log n) amortised. Keys are unique (``seq`` is), so pop order
depends only on the live keys, never on the heap's layout: a rebuilt queue pops in the same order.
"""

from __future__ import annotations

from collections import deque as _consume
from collections.abc import Iterator
from heapq import heapify, heappop, heappush
from typing import cast

import msgspec

__all__ = ["SCALE", "SPAN", "IndexedPriorityQueue", "QueueStatistics", "make_key"]

#: Fixed-point scale of the priority part of a key.
SCALE = 1 << 20
#: Room for the sequence number below the priority part.
SPAN = 1 << 40
_COMPACT_SLACK = 64


def make_key(priority: float, enqueued_at: float, seq: int, rate: float) -> int:
    """The heap key of an entry (smaller pops first)."""
    if rate == 0.0 and type(priority) is int:
        return -priority * (SCALE * SPAN) + seq
    return round((rate * enqueued_at - priority) * SCALE) * SPAN + seq


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
        "_enq",
        "_heap",
        "_ids",
        "_keys",
        "_next_seq",
        "_pops",
        "_pushes",
        "_rate",
        "_removes",
        "_updates",
    )

    def __init__(self, rate: float = 0.0, *, keep_times: bool = True) -> None:
        if not keep_times and rate != 0.0:
            raise ValueError("an aging queue needs its entries' enqueue times")
        self._heap: list[int] = []
        #: live key -> id
        self._ids: dict[int, str] = {}
        #: id -> live key
        self._keys: dict[str, int] = {}
        #: id -> enqueue time (needed to re-key under aging). None when the owner keeps the
        #: times itself and never ages this queue (SchedulerState re-pushes on a rate change):
        #: one dict write and one delete less per entry, on the scheduler's hottest path.
        self._enq: dict[str, float] | None = {} if keep_times else None
        self._rate = rate
        self._next_seq = 0
        self._pushes = 0
        self._pops = 0
        self._updates = 0
        self._removes = 0
        self._compactions = 0

    def __len__(self) -> int:
        return len(self._keys)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._keys

    @property
    def rate(self) -> float:
        return self._rate

    def push(
        self, item_id: str, priority: float, enqueued_at: float = 0.0, seq: int | None = None
    ) -> int:
        """Add ``item_id``; ``seq`` orders equals (defaults to this queue's own counter).
        Returns the entry's key."""
        if item_id in self._keys:
            raise KeyError(f"{item_id!r} is already queued")
        if seq is None:
            seq = self._next_seq
        if seq >= self._next_seq:
            self._next_seq = seq + 1
        rate = self._rate
        if rate == 0.0 and type(priority) is int:
            key = -priority * (SCALE * SPAN) + seq
        else:
            key = round((rate * enqueued_at - priority) * SCALE) * SPAN + seq
        self._ids[key] = item_id
        self._keys[item_id] = key
        if self._enq is not None:
            self._enq[item_id] = enqueued_at
        heappush(self._heap, key)
        self._pushes += 1
        return key

    def push_key(self, item_id: str, key: int) -> None:
        """Add ``item_id`` under a key the caller made (``make_key``) for an id it knows is not
        queued: the scheduler's submit path, without the membership check and the key
        arithmetic call. The queue's own sequence counter is left alone."""
        if self._enq is not None:
            raise ValueError("push_key is for queues without enqueue times")
        self._ids[key] = item_id
        self._keys[item_id] = key
        heappush(self._heap, key)
        self._pushes += 1

    def head_key(self) -> int | None:
        """The key that would pop next, or None; drops stale keys on the way."""
        heap = self._heap
        ids = self._ids
        while heap:
            key = heap[0]
            if key in ids:
                return key
            heappop(heap)
        return None

    def take(self, limit: int, bound: int | None = None) -> list[str]:
        """Pop the next ``limit`` ids (only keys ``<= bound``) off the heap, best first.

        Only the heap changes: the ids stay queued (``in``, ``len``) until ``remove``. This is
        for a caller that picks entries and then removes them at once, as
        ``SchedulerState.lease`` does through its event, so that ``remove`` stays the one
        logical change and a replay (which only removes) ends in the same queue.
        """
        heap = self._heap
        ids = self._ids
        if limit <= 0:
            return []
        # The same key can sit in the heap twice: a re-key back to an earlier priority pushes
        # the key that is still there, stale, from before. Copies pop next to each other, so
        # a key equal to the one just taken is skipped, and copies of the last key taken are
        # dropped at the end, so a later ``take`` before ``remove`` cannot return it again.
        last: int | None = None
        if bound is None and limit <= len(heap):
            # The common case (one eligible class): pop ``limit`` keys in one comprehension
            # and resolve them with one C-level map; stale keys and copies (rare) go below.
            keys = [heappop(heap) for _ in range(limit)]
            got = list(map(ids.get, keys))
            last = keys[-1]
            if None not in got and len(set(keys)) == limit:
                if heap and heap[0] == last:
                    heappop(heap)
                    while heap and heap[0] == last:
                        heappop(heap)
                return cast("list[str]", got)
            out: list[str] = []
            last = None
            for key, item_id in zip(keys, got, strict=True):
                if item_id is not None and key != last:
                    out.append(item_id)
                    last = key
        else:
            out = []
        while heap and len(out) < limit:
            key = heap[0]
            if key != last:
                item_id = ids.get(key)
                if item_id is not None:
                    if bound is not None and key > bound:
                        break
                    out.append(item_id)
                    last = key
            heappop(heap)
        while heap and heap[0] == last:
            heappop(heap)
        return out

    def remove_many(self, item_ids: list[str]) -> None:
        """Drop every id of ``item_ids``, all of which must be queued (KeyError otherwise)."""
        keys = self._keys
        ids = self._ids
        # C-level loops: a lease removes its whole batch here.
        _consume(map(ids.__delitem__, map(keys.pop, item_ids)), 0)
        if self._enq is not None:
            _consume(map(self._enq.__delitem__, item_ids), 0)
        self._removes += len(item_ids)
        if len(self._heap) > 2 * len(keys) + _COMPACT_SLACK:
            self._rebuild()

    def id_of(self, key: int) -> str:
        return self._ids[key]

    def peek(self) -> str | None:
        key = self.head_key()
        return None if key is None else self._ids[key]

    def pop(self) -> str:
        """Remove and return the id with the highest effective priority; IndexError if empty."""
        heap = self._heap
        ids = self._ids
        while heap:
            item_id = ids.pop(heappop(heap), None)
            if item_id is not None:
                del self._keys[item_id]
                if self._enq is not None:
                    del self._enq[item_id]
                self._pops += 1
                return item_id
        raise IndexError("pop from an empty queue")

    def remove(self, item_id: str) -> bool:
        """Drop ``item_id`` if queued; returns whether it was."""
        key = self._keys.pop(item_id, None)
        if key is None:
            return False
        del self._ids[key]
        if self._enq is not None:
            del self._enq[item_id]
        self._removes += 1
        if len(self._heap) > 2 * len(self._keys) + _COMPACT_SLACK:
            self._rebuild()
        return True

    def update(self, item_id: str, priority: float) -> None:
        """Re-key ``item_id`` in O(log n); keeps its enqueue time and its place among equals."""
        keys = self._keys
        old = keys[item_id]
        rate = self._rate
        if rate == 0.0 and type(priority) is int:
            key = -priority * (SCALE * SPAN) + old % SPAN
        else:
            enq = self._enq
            key = make_key(priority, 0.0 if enq is None else enq[item_id], old % SPAN, rate)
        if key == old:
            return
        ids = self._ids
        del ids[old]
        ids[key] = item_id
        keys[item_id] = key
        heappush(self._heap, key)
        self._updates += 1
        if len(self._heap) > 2 * len(self._keys) + _COMPACT_SLACK:
            self._rebuild()

    def key(self, item_id: str) -> int:
        return self._keys[item_id]

    def seq(self, item_id: str) -> int:
        return self._keys[item_id] % SPAN

    def priority(self, item_id: str) -> float:
        """The entry's base priority, recovered from its key (exact for integers when rate is 0,
        else to within 1 / SCALE)."""
        key = self._keys[item_id]
        q = (key - key % SPAN) // SPAN
        enq = self._enq
        return self._rate * (0.0 if enq is None else enq[item_id]) - q / SCALE

    def set_rate(self, rate: float) -> None:
        """Change the aging rate: every key changes, so this re-keys all entries (O(n))."""
        enq = self._enq
        if enq is None:
            raise ValueError("this queue does not keep enqueue times; re-push its entries")
        prio = {i: self.priority(i) for i in self._keys}
        self._rate = rate
        # Recompute from the recovered priorities; integral ones stay exact.
        self._keys = {
            i: make_key(_as_int(p), enq[i], k % SPAN, rate)
            for (i, k), p in zip(self._keys.items(), prio.values(), strict=True)
        }
        self._rebuild()

    def entries(self) -> Iterator[tuple[str, int]]:
        """(id, seq) of the live entries, in no particular order."""
        return ((i, k % SPAN) for i, k in self._keys.items())

    def ordered(self) -> list[str]:
        """Live ids in pop order (O(n log n))."""
        ids = self._ids
        return [ids[k] for k in sorted(ids)]

    def statistics(self) -> QueueStatistics:
        return QueueStatistics(
            size=len(self._keys),
            heap_entries=len(self._heap),
            pushes=self._pushes,
            pops=self._pops,
            updates=self._updates,
            removes=self._removes,
            compactions=self._compactions,
        )

    def _rebuild(self) -> None:
        self._ids = {k: i for i, k in self._keys.items()}
        self._heap = list(self._ids)
        heapify(self._heap)
        self._compactions += 1


def _as_int(p: float) -> float:
    r = round(p)
    return r if abs(p - r) < 1e-6 else p
