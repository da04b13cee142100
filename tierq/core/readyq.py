"""The scheduler's ready queue: one FIFO run per priority level, holding the task records.

Without aging (the default) a READY task's key is ``-priority * 2**60 + seq`` (see
:func:`~tierq.core.pqueue.make_key`), and the tasks of one priority arrive in ``seq`` order. So
each priority level is a plain list that only grows at its end and is read from a moving head,
and only the levels (at most 2,001 for the priority range) sit in a heap. Taking a batch of
1,000 is a slice of one or two lists rather than 1,000 ``heappop`` calls on a million-entry
heap, whose cache misses made that heap the largest single cost of a lease
(``benchmarks/core_bench.py``).

The queue holds the :class:`~tierq.core.model.Task` records themselves and keeps no index:
``task.ready_key`` is the token of the task's live entry, ``seq << 16 | priority & 0xFFFF``
(unique per entry, and small enough for a snapshot, which the key is not), and an entry is live
exactly when its task still carries the entry's token. Removal clears ``ready_key`` (stale
entries are skipped when met and dropped when they outnumber live ones), and a lease gets the
records straight from the queue, with no id lookups. A batch is checked with one C-level
``map`` and one list comparison.

Without aging a level holds one priority ``p``, so its keys and tokens grow together (both with
``seq``): the tokens order the level, and it stores no keys (a key is ``(tok >> 16) - p * 2**60``
when one is asked for, and a bound is turned into the level's token space). That saves an int
and a list slot per queued task, about 40 bytes. With aging (below) the keys are stored.

An entry that arrives out of order for its level (a re-key keeps the task's ``seq``, so it is
older than the level's tail) goes to the level's small ``late`` list, appended unsorted and
sorted (descending, so the smallest pops off the end) only when the level is read: a re-key
costs an append, not a sift through cold entries. A level is read as the merge of its two
lists. With aging every key depends on its enqueue time, levels do not order each other, and
all entries share one level: entries that arrive in key order append to its list, the others go
to ``late``; correct, and slower when priorities are mixed.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from heapq import heapify, heappop, heappush
from operator import attrgetter

from .live import LiveTask
from .pqueue import SCALE, SPAN, QueueStatistics, make_key

__all__ = ["ReadyQueue", "token"]

#: ``key >> _LEVEL_SHIFT`` is the key's priority part: one level per distinct priority.
_LEVEL_SHIFT = SPAN.bit_length() - 1
_UNIT = SCALE * SPAN
#: Without aging, the level of priority ``p`` is ``-p << _PRIO_SHIFT`` (``key >> _LEVEL_SHIFT``
#: for a key of that priority and any ``seq < SPAN``).
_PRIO_SHIFT = _UNIT.bit_length() - 1 - _LEVEL_SHIFT
_COMPACT_SLACK = 64
#: A level's lists drop their consumed prefix once the head has moved this far (and past half).
_TRIM_AT = 4096
_READY_KEY = attrgetter("ready_key")

#: An out-of-order entry: (its level's order value, n, token, task): the key with aging, the
#: token without (see _Level). They may repeat (a re-key back to an earlier priority), so
#: ``n``, unique per entry, breaks ties and a task itself is never compared.
_Late = tuple[int, int, int, LiveTask]


def token(seq: int, priority: int) -> int:
    """The ``ready_key`` of an entry: one per (seq, effective priority), fits in 63 bits."""
    return seq << 16 | priority & 0xFFFF


class _Level:
    """One priority's entries: ``keys[head:]`` ascending with their tokens in ``toks`` and
    tasks in ``tasks``, plus the entries that arrived out of order in ``late`` (sorted in
    descending order unless ``dirty``; see ``_late``).

    Without aging (``prio`` is the level's priority) ``keys`` *is* ``toks``: the level is
    ordered in token space, and ``key``/``bound`` convert from and to the queue's keys. With
    aging (``prio`` None) ``keys`` holds the keys."""

    __slots__ = ("dirty", "head", "keys", "late", "prio", "tasks", "toks")

    def __init__(self, prio: int | None) -> None:
        self.prio = prio
        self.toks: list[int] = []
        self.keys: list[int] = [] if prio is None else self.toks
        self.tasks: list[LiveTask] = []
        self.head = 0
        self.late: list[_Late] = []
        self.dirty = False

    def key(self, k: int) -> int:
        """The queue key of the level's order value ``k``."""
        p = self.prio
        return k if p is None else (k >> 16) - p * _UNIT

    def bound(self, key: int) -> int:
        """The level's order value for a queue key: ``k <= bound(key)`` iff its key is."""
        p = self.prio
        return key if p is None else (key + p * _UNIT) << 16 | p & 0xFFFF

    def trim(self) -> None:
        """Drop the consumed prefix of the lists."""
        h = self.head
        if self.keys is not self.toks:
            del self.keys[:h]
        del self.toks[:h]
        del self.tasks[:h]
        self.head = 0


class ReadyQueue:
    """Max-priority queue of READY tasks, FIFO among equals; see the module docstring."""

    __slots__ = (
        "_aging",
        "_compactions",
        "_late_n",
        "_levels",
        "_order",
        "_physical",
        "_pops",
        "_pushes",
        "_rate",
        "_removes",
        "_size",
        "_updates",
    )

    def __init__(self, rate: float = 0.0) -> None:
        self._rate = rate
        self._aging = rate != 0.0
        #: level -> its entries; a level is in ``_order`` exactly when it is here.
        self._levels: dict[int, _Level] = {}
        #: Heap of the levels present (smaller first, like the keys).
        self._order: list[int] = []
        #: Live entries (tasks whose ``ready_key`` is set by this queue).
        self._size = 0
        #: Entries stored in the levels, stale ones included.
        self._physical = 0
        self._pushes = 0
        self._pops = 0
        self._updates = 0
        self._removes = 0
        self._compactions = 0
        self._late_n = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    @property
    def rate(self) -> float:
        return self._rate

    # ------------------------------------------------------------------ adding

    def push(self, task: LiveTask, priority: int, enqueued_at: float, seq: int) -> int:
        """Queue ``task`` (not queued now) with its effective priority; returns its key."""
        key = make_key(priority, enqueued_at, seq, self._rate)
        self.push_key(task, key, token(seq, priority))
        return key

    def push_key(self, task: LiveTask, key: int, tok: int) -> None:
        """Queue ``task`` (not queued now) under a key and token the caller made with
        ``make_key`` and ``token``: the scheduler's submit path, without the calls."""
        task.ready_key = tok
        self._store(task, key, tok)
        self._size += 1
        self._pushes += 1

    def push_new(self, tasks: list[LiveTask], seqs: list[int]) -> None:
        """Queue new tasks (none queued, no boost yet) at their priority with these sequence
        numbers: ``push`` for a submitted batch, in one loop. Non-aging queues only."""
        assert not self._aging, "an aging queue needs enqueue times: use push"
        levels = self._levels
        order = self._order
        shift = _PRIO_SHIFT
        # _store(), inlined: this loop runs once per submitted task.
        for task, seq in zip(tasks, seqs, strict=True):
            p = task.priority
            tok = seq << 16 | p & 0xFFFF
            task.ready_key = tok
            level_no = -p << shift
            level = levels.get(level_no)
            if level is None:
                level = levels[level_no] = _Level(p)
                heappush(order, level_no)
            toks = level.toks
            if not toks or tok > toks[-1]:
                toks.append(tok)
                level.tasks.append(task)
            else:
                self._late_n += 1
                level.late.append((tok, self._late_n, tok, task))
                level.dirty = True
        n = len(tasks)
        self._size += n
        self._pushes += n
        self._physical += n

    def _store(self, task: LiveTask, key: int, tok: int) -> None:
        if self._aging:
            level_no = 0
            k = key
        else:
            level_no = key >> _LEVEL_SHIFT
            k = tok  # the level's order (see _Level)
        level = self._levels.get(level_no)
        if level is None:
            prio = None if self._aging else -(level_no >> _PRIO_SHIFT)
            level = self._levels[level_no] = _Level(prio)
            heappush(self._order, level_no)
        keys = level.keys
        toks = level.toks
        if not keys or k > keys[-1]:
            if keys is not toks:
                keys.append(k)
            toks.append(tok)
            level.tasks.append(task)
        else:
            self._late_n += 1
            level.late.append((k, self._late_n, tok, task))
            level.dirty = True
        self._physical += 1

    # ----------------------------------------------------------------- reading

    def _first(self, level: _Level) -> int | None:
        """The level's first live key, dropping stale entries in front of it."""
        keys = level.keys
        toks = level.toks
        tasks = level.tasks
        late = _late(level)
        h = level.head
        n = len(keys)
        dropped = 0
        found: int | None = None
        while True:
            a = keys[h] if h < n else None
            if late and (a is None or late[-1][0] < a):
                key, _, tok, task = late[-1]
                if task.ready_key == tok:
                    found = key
                    break
                late.pop()
            elif a is not None:
                if tasks[h].ready_key == toks[h]:
                    found = a
                    break
                h += 1
            else:
                break
            dropped += 1
        level.head = h
        self._physical -= dropped
        return None if found is None else level.key(found)

    def head_key(self) -> int | None:
        """The key that would be taken next, or None; drops stale entries on the way."""
        order = self._order
        levels = self._levels
        while order:
            key = self._first(levels[order[0]])
            if key is not None:
                return key
            del levels[heappop(order)]
        return None

    def take(self, limit: int, bound: int | None = None) -> list[LiveTask]:
        """The next ``limit`` tasks (only keys ``<= bound``), best first, off the levels.

        They stay queued (counted, ``ready_key`` set) until ``remove_many``: the scheduler
        picks tasks here and removes them when it applies its event, so that a replay, which
        only removes, ends in the same queue.
        """
        order = self._order
        levels = self._levels
        out: list[LiveTask] = []
        last: int | None = None
        at_bound = False
        while order and len(out) < limit and not at_bound:
            level = levels[order[0]]
            lb = None if bound is None else level.bound(bound)
            if level.late:
                at_bound, last = self._take_merged(level, limit, lb, out, last)
            else:
                at_bound = self._take_run(level, limit, lb, out)
            if level.head >= len(level.keys) and not level.late:
                del levels[heappop(order)]
            elif level.head > _TRIM_AT and 2 * level.head > len(level.keys):
                level.trim()
        # Drop further copies of the last key taken, so a later ``take`` before the removal
        # cannot return its task again. (Copies only arise through ``late``; ``last`` is in
        # its level's order, and orders of different levels never share a value.)
        if last is not None and order:
            level = levels[order[0]]
            late = _late(level)
            keys = level.keys
            while late and late[-1][0] == last:
                late.pop()
                self._physical -= 1
            while level.head < len(keys) and keys[level.head] == last:
                level.head += 1
                self._physical -= 1
        return out

    def _take_run(self, level: _Level, limit: int, bound: int | None, out: list[LiveTask]) -> bool:
        """``take`` from a level with nothing out of order: slices of its lists, checked with
        one C-level map (the common case). ``bound`` is in the level's order (``_Level.bound``).
        Returns whether it stopped the run."""
        keys = level.keys
        h = level.head
        end = min(len(keys), h + limit - len(out))
        at_bound = False
        if bound is not None and end > h and keys[end - 1] > bound:
            end = bisect_right(keys, bound, h, end)
            at_bound = True
        if end > h:
            tchunk = level.tasks[h:end]
            kchunk = level.toks[h:end]
            if list(map(_READY_KEY, tchunk)) == kchunk:
                out += tchunk
            else:
                out += [t for t, k in zip(tchunk, kchunk, strict=True) if t.ready_key == k]
            self._physical -= end - h
            level.head = end
        return at_bound

    def _take_merged(
        self, level: _Level, limit: int, bound: int | None, out: list[LiveTask], last: int | None
    ) -> tuple[bool, int | None]:
        """``take`` from a level whose ``late`` heap is not empty: merge it with the list one
        entry at a time. Returns whether ``bound`` stopped it, and the last key taken."""
        keys = level.keys
        toks = level.toks
        tasks = level.tasks
        late = _late(level)
        h = level.head
        n = len(keys)
        at_bound = False
        consumed = 0
        while len(out) < limit:
            a = keys[h] if h < n else None
            if late and (a is None or late[-1][0] < a):
                key, _, tok, task = late[-1]
                if bound is not None and key > bound:
                    at_bound = True
                    break
                late.pop()
            elif a is not None:
                key = a
                if bound is not None and key > bound:
                    at_bound = True
                    break
                tok = toks[h]
                task = tasks[h]
                h += 1
            else:
                break
            consumed += 1
            # Copies of one entry (a re-key back to an earlier priority) meet here.
            if key != last and task.ready_key == tok:
                out.append(task)
                last = key
        level.head = h
        self._physical -= consumed
        return at_bound, last

    # ---------------------------------------------------------------- removing

    def remove(self, task: LiveTask) -> None:
        """Take ``task`` (queued here) out; its entry goes stale."""
        task.ready_key = None
        self._size -= 1
        self._removes += 1
        if self._physical > 2 * self._size + _COMPACT_SLACK:
            self._rebuild()

    def remove_many(self, tasks: list[LiveTask]) -> None:
        """``remove`` for a batch (a lease's)."""
        for task in tasks:
            task.ready_key = None
        self._size -= len(tasks)
        self._removes += len(tasks)
        if self._physical > 2 * self._size + _COMPACT_SLACK:
            self._rebuild()

    def dropped(self, n: int) -> None:
        """``n`` tasks of this queue left it, their ``ready_key`` cleared by the caller: what
        ``remove_many`` does, for a caller that already loops over the tasks (a lease)."""
        self._size -= n
        self._removes += n
        if self._physical > 2 * self._size + _COMPACT_SLACK:
            self._rebuild()

    def update(self, task: LiveTask, priority: int, enqueued_at: float) -> None:
        """Re-key ``task`` (queued here); it keeps its ``seq``, so its place among equals."""
        old = task.ready_key
        assert old is not None, f"task {task.id} is not queued"
        seq = old >> 16
        tok = seq << 16 | priority & 0xFFFF  # token(), inlined: reprioritize's hot path
        if tok == old:
            return
        # The old entry goes stale (it no longer carries the task's token).
        task.ready_key = tok
        if self._aging:
            self._store(task, make_key(priority, enqueued_at, seq, self._rate), tok)
        else:
            self._store(task, seq - priority * _UNIT, tok)  # make_key() without aging
        self._updates += 1
        if self._physical > 2 * self._size + _COMPACT_SLACK:
            self._rebuild()

    # ----------------------------------------------------------------- queries

    def _live(self) -> Iterator[tuple[int, int, LiveTask]]:
        """(key, token, task) of every stored live entry, once each, level by level."""
        for level in self._levels.values():
            key = level.key
            for k, tok, task in _live_entries(level):
                yield key(k), tok, task

    def entries(self) -> Iterator[tuple[str, int]]:
        """(task id, seq) of the queued tasks, in no particular order."""
        return ((task.id, tok >> 16) for _, tok, task in self._live())

    def ordered(self) -> list[str]:
        """Queued task ids in the order they would be taken (O(n log n))."""
        return [task.id for _, _, task in sorted(self._live(), key=_first_of)]

    def statistics(self) -> QueueStatistics:
        return QueueStatistics(
            size=self._size,
            heap_entries=self._physical,
            pushes=self._pushes,
            pops=self._pops,
            updates=self._updates,
            removes=self._removes,
            compactions=self._compactions,
        )

    def _rebuild(self) -> None:
        """Keep only the live entries still stored (taken ones stay out), one copy each.
        Level by level, in C-level passes: a level whose stored entries are all live and in
        order is kept as it is."""
        levels: dict[int, _Level] = {}
        physical = 0
        for level_no, old in self._levels.items():
            h = old.head
            tasks = old.tasks[h:]
            toks = old.toks[h:]
            if not old.late and list(map(_READY_KEY, tasks)) == toks:
                if not tasks:
                    continue
                level = _Level(old.prio)
                level.toks = toks
                level.keys = toks if old.prio is not None else old.keys[h:]
                level.tasks = tasks
            else:
                live = _live_entries(old)
                if not live:
                    continue
                level = _Level(old.prio)
                level.toks = [e[1] for e in live]
                level.keys = level.toks if old.prio is not None else [e[0] for e in live]
                level.tasks = [e[2] for e in live]
            levels[level_no] = level
            physical += len(level.keys)
        self._levels = levels
        self._order = list(levels)
        heapify(self._order)
        self._physical = physical
        self._compactions += 1


def _late(level: _Level) -> list[_Late]:
    """The level's out-of-order entries sorted for reading: descending, smallest last."""
    if level.dirty:
        level.late.sort(reverse=True)
        level.dirty = False
    return level.late


def _live_entries(level: _Level) -> list[tuple[int, int, LiveTask]]:
    """The level's live (order value, token, task) entries in order, one copy each (copies
    of an entry share its key, which holds the task's unique ``seq``; see ``_Level``)."""
    h = level.head
    entries = [
        (key, tok, task)
        for key, tok, task in zip(level.keys[h:], level.toks[h:], level.tasks[h:], strict=True)
        if task.ready_key == tok
    ]
    if level.late:
        entries += [(key, tok, task) for key, _, tok, task in level.late if task.ready_key == tok]
        entries.sort(key=_first_of)
        entries = [e for i, e in enumerate(entries) if i == 0 or e[0] != entries[i - 1][0]]
    return entries


def _first_of(item: tuple[int, int, LiveTask]) -> int:
    return item[0]
