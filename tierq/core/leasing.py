"""Leasing: hand a region the best READY tasks it can run, and apply ``tasks_assigned``.

A region may take a placement class when it runs the task name, matches the affinity and has
the labels (``placement.py``). ``lease`` k-way merges the heads of those classes, skipping the
ones behind an open breaker, so it never scans tasks it cannot take. Picking only reads the
tasks off the queues; they leave them when the event is applied, so a replay, which only
applies, ends with the same queues. This is the lease hot path: the batch steps run per batch
with C-level maps, and only an unusual batch goes task by task.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from heapq import heapify, heappop, heappush
from operator import attrgetter
from typing import cast

from ..errors import InvalidRequestError
from .book import ASSIGNED, CLASS, QUEUE, READY, SPEC, SUCCEEDED, Book
from .breaker import BLOCKED, PROBE
from .events import Event, RegionHeartbeat, TaskAssigned, TasksAssigned
from .leases import RegionRecord
from .live import NO_HISTORY, LiveTask, TaskExtra
from .model import LeasedTask, TaskSpec, TaskState
from .placement import ClassKey
from .pqueue import SCALE, SPAN
from .records import stamp
from .states import band, check_transition
from .validate import RESULT_REF

__all__ = ["assign_batch", "lease", "leased_task", "on_assigned", "on_tasks_assigned"]

_STATE = attrgetter("state")
_ID = attrgetter("id")
_ATTEMPT = attrgetter("attempt")
_ONLY_READY = frozenset({TaskState.READY})


def lease(
    book: Book,
    region: str,
    instance: str,
    slots: int,
    now: float,
    types: Collection[str] | None = None,
) -> tuple[list[Event], list[LeasedTask]]:
    """Hand up to ``slots`` READY tasks that ``region`` can run, best first; renews its lease.

    With ``types``, only tasks of those names (a region asks for the types of the workers that
    have room, so a busy type cannot take an idle one's slots). Classes whose task breaker
    (for this region) or resource breaker is open are skipped: their tasks wait. A half-open
    breaker lets one probe through.
    """
    now = float(now)
    rec = book.regions.require(region, instance)
    if type(slots) is not int or slots < 0:
        raise InvalidRequestError(f"slots must be a count >= 0, got {slots!r}", field="slots")
    slots = min(slots, book.settings.max_lease_batch)
    out: list[Event] = []
    if rec.needs_renewal(now, book.settings.region_lease_seconds):
        book.emit(RegionHeartbeat(at=now, name=region, instance=instance), out)
    if slots == 0:
        return out, []
    picked, runs = _pick(book, rec, slots, types)
    if not picked:
        return out, []
    ev = TasksAssigned(
        at=now, region=region, ids=list(map(_ID, picked)), attempts=list(map(_ATTEMPT, picked))
    )
    assign_batch(book, ev, picked, runs)
    out.append(ev)
    return out, _hand_out(book, picked)


def _pick(
    book: Book, rec: RegionRecord, slots: int, types: Collection[str] | None
) -> tuple[list[LiveTask], list[tuple[ClassKey, list[LiveTask]]]]:
    """Up to ``slots`` tasks for ``rec``, best first, and the runs they came in by class: a
    k-way merge of the heads of the classes it may take from."""
    chosen: list[LiveTask] = []
    runs: list[tuple[ClassKey, list[LiveTask]]] = []
    heads, probing = _lease_heads(book, rec, types)
    placement = book.placement
    while heads and len(chosen) < slots:
        _, i, key, offset = heappop(heads)
        queue = placement.get(key)
        assert queue is not None
        # Take a run from this class while its head still beats the best other head: with
        # one eligible class (the common case) the merge heap is never touched again.
        # ``take`` only pops the heap; the tasks leave the queue when the event is applied.
        probe = i in probing
        got = queue.take(
            1 if probe else slots - len(chosen),
            heads[0][0] + offset if heads else None,
        )
        if got:
            chosen += got
            runs.append((key, got))
        # A class behind a half-open breaker gives one probe, then drops out.
        if len(chosen) < slots and not (probe and got):
            head = queue.head_key()
            if head is not None:
                heappush(heads, (head - offset, i, key, offset))
    return chosen, runs


def _hand_out(book: Book, picked: list[LiveTask]) -> list[LeasedTask]:
    """What the region gets for each picked task."""
    # leased_task(), inlined for tasks without parents (nothing to look up or substitute).
    return [
        leased_task(book, task)
        if (x := task.extra) is not None and x.parents
        else LeasedTask(
            id=task.id,
            attempt=task.attempt,
            name=(spec := task.spec).name,
            args=spec.args,
            kwargs=spec.kwargs,
            priority=task.priority,
            timeout=spec.timeout,
            deadline=spec.deadline,
            labels=spec.labels,
            resource=spec.resource,
            queue=spec.queue,
            workflow_id=None if x is None else x.workflow_id,
            submitted_at=task.submitted_at,
        )
        for task in picked
    ]


def _lease_heads(
    book: Book, rec: RegionRecord, types: Collection[str] | None
) -> tuple[list[tuple[int, int, ClassKey, int]], set[int]]:
    """The merge heap of the classes ``rec`` may take from now, and which of them are
    behind a half-open breaker (they give one probe, then stop)."""
    placement = book.placement
    board = book.breakers
    check_breakers = bool(board)
    region = rec.name
    # (key - rule offset, class index, class, offset); keys are unique across classes
    # (the sequence number is global), so ties never reach the class tuple.
    heads: list[tuple[int, int, ClassKey, int]] = []
    probing: set[int] = set()
    for i, key in enumerate(placement.eligible(rec.info)):
        queue = placement.get(key)
        if not queue or (types is not None and key[0] not in types):
            continue
        if check_breakers:
            gate = board.gate(region, key[0], key[3])
            if gate == BLOCKED:
                continue
            if gate == PROBE:
                probing.add(i)
        head = queue.head_key()
        assert head is not None
        offset = _rule_offset(book, key[0])
        heads.append((head - offset, i, key, offset))
    heapify(heads)
    return heads, probing


def _rule_offset(book: Book, name: str) -> int:
    """Priority points rules add to every READY task of ``name`` now, in key units."""
    rules = book.rules.get(name)
    if not rules:
        return 0
    depth = book.ready_by_name.get(name, 0)
    return sum(r.boost for r in rules if depth > r.min_queue_depth) * SCALE * SPAN


def _parent_value(book: Book, parent_id: str) -> object:
    parent = book.tasks.get(parent_id)
    if parent is None:
        return None
    if parent.state is SUCCEEDED:
        return parent.result
    err = parent.error
    return {
        "$error": {
            "state": parent.state.value,
            "type": err.type if err is not None else None,
            "message": err.message if err is not None else parent.reason,
        }
    }


def leased_task(book: Book, task: LiveTask) -> LeasedTask:
    spec = task.spec
    args: list[object] = spec.args
    kwargs: dict[str, object] = spec.kwargs
    results: dict[str, object] = {}
    tasks = book.tasks
    for p in task.parents:
        parent = tasks.get(p)
        if parent is not None and parent.state is SUCCEEDED:
            results[p] = parent.result
        else:
            results[p] = _parent_value(book, p)
    if task.id in book.refs:
        nodes: dict[str, str] = {}
        if task.workflow_id is not None:
            wf = book.workflows.get(task.workflow_id)
            if wf is not None:
                nodes = wf.nodes

        def value(ref: str) -> object:
            return results.get(nodes.get(ref, ref))

        args = cast("list[object]", substitute(args, value))
        kwargs = cast("dict[str, object]", substitute(kwargs, value))
    return LeasedTask(
        id=task.id,
        attempt=task.attempt,
        name=spec.name,
        args=args,
        kwargs=kwargs,
        priority=task.priority,
        timeout=spec.timeout,
        deadline=spec.deadline,
        labels=spec.labels,
        resource=spec.resource,
        queue=spec.queue,
        workflow_id=task.workflow_id,
        parent_results=results,
        submitted_at=task.submitted_at,
    )


def on_assigned(book: Book, ev: TaskAssigned) -> None:
    task = book.tasks[ev.id]
    if task.state is not READY:
        check_transition(task.id, task.state, ASSIGNED)
    at = ev.at
    region = ev.region
    task.region = region
    if task.worker is not None or task.progress:
        task.worker = None
        task.progress = 0.0
        task.progress_message = None
    # Book.leave(READY) + Book.enter(ASSIGNED), inlined: this runs once per leased task.
    spec = task.spec
    by_state = book.by_state
    by_state[READY] -= 1
    by_state[ASSIGNED] += 1
    book.waiting -= 1
    book.waiting_by_queue[spec.queue] -= 1
    p = task.priority
    book.waiting_by_band["normal" if p == 0 else band(p)] -= 1
    book.placement.queue_of(spec).remove(task)
    book.ready_by_name[spec.name] -= 1
    task.state = ASSIGNED
    stamp(task, "assigned", at)
    book.regions.hold(region, task.id)
    if book.breakers:
        book.breakers.claim_probe(region, spec.name, spec.resource, task.id)


def on_tasks_assigned(book: Book, ev: TasksAssigned) -> None:
    # The per-task steps of on_assigned, once per lease call: this is the lease hot path.
    # Everything that does not depend on the single task (queue removal, the counters, the
    # held set) is done per batch with C-level maps; a batch that is not plainly READY
    # tasks, each once, or that may claim a breaker probe, goes task by task.
    if len(ev.attempts) != len(ev.ids):
        raise InvalidRequestError(
            "tasks_assigned: ids and attempts differ in length", field="attempts"
        )
    assign_batch(book, ev, list(map(book.tasks.__getitem__, ev.ids)))


def assign_batch(
    book: Book,
    ev: TasksAssigned,
    picked: list[LiveTask],
    runs: list[tuple[ClassKey, list[LiveTask]]] | None = None,
) -> None:
    """Apply ``ev`` to ``picked``, its tasks in order. A replay looks them up; a lease
    passes the records it took from the queues, grouped in ``runs`` by class, which also
    vouches that they are distinct READY tasks."""
    ids = ev.ids
    probes = bool(book.breakers) and book.breakers.probe_wanted()
    if probes or (
        runs is None and (set(map(_STATE, picked)) != _ONLY_READY or len(set(ids)) != len(ids))
    ):
        _assign_each(book, ev, picked, probes)
        return
    specs = list(map(SPEC, picked))
    placement = book.placement
    rn = book.ready_by_name
    # The tasks leave their queues here (counts) and in _assign_rest (each ready_key).
    if runs is not None:
        for key, members in runs:
            placement.queue(key).dropped(len(members))
            rn[key[0]] -= len(members)
        _assign_rest(book, ev, picked, specs)
        return
    classes = list(map(CLASS, specs))
    first = classes[0]
    if classes.count(first) == len(classes):
        placement.queue(first).dropped(len(ids))
        rn[first[0]] -= len(ids)
    else:
        groups: dict[ClassKey, list[LiveTask]] = {}
        for key, task in zip(classes, picked, strict=True):
            group = groups.get(key)
            if group is None:
                groups[key] = [task]
            else:
                group.append(task)
        for key, members in groups.items():
            placement.queue(key).dropped(len(members))
            rn[key[0]] -= len(members)
    _assign_rest(book, ev, picked, specs)


def _assign_rest(
    book: Book, ev: TasksAssigned, picked: list[LiveTask], specs: list[TaskSpec]
) -> None:
    """``assign_batch`` once the tasks have left their queues."""
    at = ev.at
    region = ev.region
    done = len(picked)
    _unwait_batch(book, specs, picked)
    no_history = NO_HISTORY
    # The attempt's record is made when first needed (see book.attempt_record).
    for task in picked:
        task.ready_key = None
        task.state = ASSIGNED
        # The fields of ``extra`` without the properties, and stamp() inlined: a task READY
        # since submission gets its extra record and first dict here, which is cheaper than
        # writing to ones made at submit and gone cold since.
        x = task.extra
        if x is None:
            task.extra = TaskExtra(
                region=region,
                timestamps={"ready": task.submitted_at, "assigned": at},
                history=no_history,
            )
            continue
        x.region = region
        ts = x.timestamps
        if ts:
            ts["assigned"] = at
        else:
            x.timestamps = {"ready": task.submitted_at, "assigned": at}
        if x.worker is not None or x.progress:
            x.worker = None
            x.progress = 0.0
            x.progress_message = None
    book.regions.hold_all(region, ev.ids)
    by_state = book.by_state
    by_state[READY] -= done
    by_state[ASSIGNED] += done
    book.waiting -= done


def _unwait_batch(book: Book, specs: list[TaskSpec], picked: list[LiveTask]) -> None:
    """Take a batch of READY tasks off the per-queue and per-band waiting counters."""
    done = len(picked)
    wq = book.waiting_by_queue
    queues = list(map(QUEUE, specs))
    if queues.count(queues[0]) == done:
        wq[queues[0]] -= done
    else:
        for q, n in Counter(queues).items():
            wq[q] -= n
    book.count_bands(picked, -1)


def _assign_each(book: Book, ev: TasksAssigned, picked: list[LiveTask], probes: bool) -> None:
    """``on_tasks_assigned`` task by task: checks each transition, claims probes."""
    at = ev.at
    region = ev.region
    hold = book.regions.hold
    queue_of = book.placement.queue_of
    wq = book.waiting_by_queue
    wb = book.waiting_by_band
    rn = book.ready_by_name
    done = 0
    try:
        for tid, task in zip(ev.ids, picked, strict=True):
            if task.state is not READY:
                check_transition(tid, task.state, ASSIGNED)
            task.region = region
            if task.worker is not None or task.progress:
                task.worker = None
                task.progress = 0.0
                task.progress_message = None
            spec = task.spec
            queue_of(spec).remove(task)
            wq[spec.queue] -= 1
            p = task.priority
            wb["normal" if p == 0 else band(p)] -= 1
            rn[spec.name] -= 1
            task.state = ASSIGNED
            stamp(task, "assigned", at)
            hold(region, tid)
            if probes:
                book.breakers.claim_probe(region, spec.name, spec.resource, tid)
            done += 1
    finally:
        # The state counters in one step (and still right if a corrupt log raised above).
        by_state = book.by_state
        by_state[READY] -= done
        by_state[ASSIGNED] += done
        book.waiting -= done


def substitute(value: object, lookup: Callable[[str], object]) -> object:
    """A copy of ``value`` with every {"$result": ref} replaced by ``lookup(ref)``."""
    if type(value) is dict:
        assert isinstance(value, dict)
        if len(value) == 1 and RESULT_REF in value and isinstance(value[RESULT_REF], str):
            return lookup(value[RESULT_REF])
        return {k: substitute(v, lookup) for k, v in value.items()}
    if type(value) is list:
        assert isinstance(value, list)
        return [substitute(v, lookup) for v in value]
    return value
