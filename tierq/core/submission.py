"""Submission: validate and admit tasks, and apply ``task_submitted``.

``submit`` checks the whole batch (specs, dependencies, result references, idempotency keys,
admission) before it builds a single event, so a refused batch changes nothing. The plain batch
(no keys, dependencies or references) and the plain READY task have their own fast paths: they
are the submit hot path, and they make exactly the changes the general path makes.
"""

from __future__ import annotations

from bisect import insort
from collections import Counter
from collections.abc import Iterable, Sequence
from heapq import heappush
from operator import attrgetter, itemgetter
from typing import cast

from ..errors import ConflictError, InvalidRequestError, UnknownTaskError
from .admission import check_admission
from .book import (
    CANCELLED,
    CLASS,
    DEAD,
    NAME,
    PENDING,
    PRIORITY,
    PRIORITY_UNIT,
    QUEUE,
    READY,
    SKIPPED,
    SPEC,
    SUCCEEDED,
    SV,
    UNFINISHED,
    Book,
    share_spec,
)
from .declared import with_declared
from .events import Event, TaskSubmitted
from .live import NO_HISTORY, NO_STAMPS, LiveTask, TaskExtra
from .model import TaskSpec
from .placement import ClassKey
from .states import band, check_transition
from .validate import RESULT_REF, check_specs, result_refs

__all__ = [
    "admit_specs",
    "apply_submitted",
    "check_parents",
    "check_refs",
    "on_submitted",
    "submit",
    "submitted_event",
]

_FIRST = itemgetter(0)
_SECOND = itemgetter(1)
_IDEM_KEY = attrgetter("idempotency_key")
_DEPENDS = attrgetter("depends_on")


def submit(book: Book, specs: Sequence[TaskSpec], now: float) -> tuple[list[Event], list[str]]:
    """Accept tasks; returns the events and one id per spec, in order.

    A spec whose idempotency key is already known returns the existing id (no event) when
    it is equal to the stored one, and raises ConflictError otherwise. The batch is
    all-or-nothing: any invalid spec or an admission refusal raises before any change.
    """
    now = float(now)
    specs = with_declared(book, specs)
    checked = check_specs(specs, "specs", book.settings)
    plain = list(map(_FIRST, checked))
    if not (any(map(_IDEM_KEY, plain)) or any(map(_DEPENDS, plain)) or any(map(_SECOND, checked))):
        return submit_plain(book, plain, now)
    ids: list[str | None] = [None] * len(specs)
    accepted: list[tuple[int, TaskSpec, tuple[str, ...], bool]] = []
    batch_keys: dict[str, int] = {}
    for i, (spec, refs) in enumerate(checked):
        parents: tuple[str, ...] = ()
        if spec.idempotency_key is not None or spec.depends_on or refs:
            prepared = prepare(book, i, spec, refs, specs, batch_keys)
            if isinstance(prepared, str):
                ids[i] = prepared
                continue
            if prepared is None:
                continue
            parents = prepared
        accepted.append((i, spec, parents, refs))
    admit_specs(book, [a[1] for a in accepted])

    out: list[Event] = []
    append = out.append
    tids = book.ids.next_many(now, len(accepted))
    for (i, spec, parents, refs), tid in zip(accepted, tids, strict=True):
        append(submitted_event(book, tid, spec, parents, refs, now))
        ids[i] = tid
    # The tasks' parents exist before this batch, so applying after building is the same.
    apply_submitted(book, cast("list[TaskSubmitted]", out))
    if len(accepted) == len(specs):
        return out, tids
    result: list[str] = []
    for i, maybe in enumerate(ids):
        if maybe is None:  # a repeat of an idempotency key inside this batch
            key = specs[i].idempotency_key
            assert key is not None
            maybe = book.idem[key]
        result.append(maybe)
    return out, result


def submitted_event(
    book: Book, tid: str, spec: TaskSpec, parents: tuple[str, ...], refs: bool, now: float
) -> TaskSubmitted:
    """The ``task_submitted`` of a checked spec: PENDING while its ``run_at`` is ahead or a
    parent has not succeeded, else READY."""
    run_at = spec.run_at
    not_before = run_at if run_at is not None and run_at > now else None
    state = READY
    if not_before is not None or any(book.tasks[p].state is not SUCCEEDED for p in parents):
        state = PENDING
    return TaskSubmitted(
        at=now,
        id=tid,
        spec=spec,
        state=state,
        parents=parents,
        not_before=not_before,
        uses_results=refs,
    )


def submit_plain(book: Book, specs: list[TaskSpec], now: float) -> tuple[list[Event], list[str]]:
    """``submit`` of checked specs without idempotency keys, dependencies or result
    references (the common batch): nothing to look up per spec, admission by C-level
    counting, and the events built in one loop."""
    queues = list(map(QUEUE, specs))
    if specs and queues.count(queues[0]) == len(queues):
        admit(book, {queues[0]: (len(specs), min(map(PRIORITY, specs)))})
    else:
        admit_specs(book, specs)
    tids = book.ids.next_many(now, len(specs))
    out: list[Event] = [
        TaskSubmitted(
            at=now,
            id=tid,
            spec=spec,
            state=READY if (run_at := spec.run_at) is None or run_at <= now else PENDING,
            not_before=run_at if run_at is not None and run_at > now else None,
        )
        for spec, tid in zip(specs, tids, strict=True)
    ]
    apply_submitted(book, cast("list[TaskSubmitted]", out))
    return out, tids


def prepare(
    book: Book,
    i: int,
    spec: TaskSpec,
    refs: bool,
    specs: Sequence[TaskSpec],
    batch_keys: dict[str, int],
) -> tuple[str, ...] | str | None:
    """The rest of one checked spec's validation: its parents to accept it, an existing id
    for a known idempotency key, or None for a repeat of a key earlier in the same batch."""
    field = f"specs[{i}]"
    key = spec.idempotency_key
    if key is not None:
        existing = book.idem.get(key)
        if existing is not None:
            if book.tasks[existing].spec != spec:
                raise ConflictError(
                    f"{field}.idempotency_key {key!r} was used for task {existing} "
                    "with a different spec",
                    ids=(existing,),
                )
            return existing
        first = batch_keys.get(key)
        if first is not None:
            if specs[first] != specs[i]:
                raise ConflictError(
                    f"{field}.idempotency_key {key!r} appears twice in the batch "
                    "with different specs"
                )
            return None
        batch_keys[key] = i
    parents: tuple[str, ...] = ()
    if spec.depends_on:
        parents = tuple(dict.fromkeys(spec.depends_on))
        check_parents(book, parents, f"{field}.depends_on")
    if refs:
        check_refs(spec, parents, {}, field)
    return parents


def check_parents(book: Book, parents: Sequence[str], field: str) -> None:
    tasks = book.tasks
    missing = [p for p in parents if p not in tasks]
    if missing:
        raise UnknownTaskError(
            f"{field}: unknown task ids {', '.join(missing[:10])}",
            field=field,
            ids=tuple(missing[:100]),
        )
    # A dependency on a task that can no longer succeed would wait forever.
    gone = [p for p in parents if tasks[p].state in (DEAD, CANCELLED, SKIPPED)]
    if gone:
        raise ConflictError(
            f"{field}: tasks {', '.join(gone[:10])} are dead, cancelled or skipped; "
            "retry them first",
            ids=tuple(gone[:100]),
        )


def check_refs(spec: TaskSpec, parents: Sequence[str], keys: dict[str, str], field: str) -> None:
    allowed = set(parents) | set(keys)
    bad = [r for r in result_refs([spec.args, spec.kwargs]) if r not in allowed]
    if bad:
        raise InvalidRequestError(
            f"{field}.args: {RESULT_REF} names {', '.join(bad[:10])}, which are not "
            "parents of this task",
            field=f"{field}.args",
            ids=tuple(bad[:100]),
        )


def admit_specs(book: Book, specs: Sequence[TaskSpec]) -> None:
    """Admission for a batch: how many per queue, and the lowest priority of each."""
    counts: dict[str, int] = {}
    lows: dict[str, int] = {}
    for spec in specs:
        q = spec.queue
        p = spec.priority
        n = counts.get(q)
        if n is None:
            counts[q] = 1
            lows[q] = p
        else:
            counts[q] = n + 1
            if p < lows[q]:
                lows[q] = p
    admit(book, {q: (n, lows[q]) for q, n in counts.items()})


def admit(book: Book, batch: dict[str, tuple[int, int]]) -> None:
    try:
        check_admission(book.settings.admission, book.waiting, book.waiting_by_queue, batch)
    except Exception:
        book.rejected += 1
        raise


def on_submitted(book: Book, ev: TaskSubmitted) -> None:
    spec = ev.spec
    tid = ev.id
    at = ev.at
    state = ev.state
    if state is not READY and state is not PENDING:
        check_transition(tid, PENDING, state)
    ids = book.ids
    last = ids.last_id
    if tid != last and (tid > last or len(tid) != len(last)):
        ids.observe(tid)
    priority = spec.priority
    share_spec(spec)
    task = LiveTask(id=tid, spec=spec, state=state, submitted_at=at, priority=priority)
    wf_id = ev.workflow_id
    parents = ev.parents
    not_before = ev.not_before
    # The extra record only when one of its fields is not at its default (what the setters
    # would do, in one constructor call). READY at submission: the "ready" time is
    # submitted_at (see records.stamp).
    if wf_id is not None or parents or not_before is not None or state is not READY:
        task.extra = TaskExtra(
            workflow_id=wf_id,
            parents=parents,
            not_before=not_before,
            timestamps=NO_STAMPS if state is READY else {SV[state]: at},
            history=NO_HISTORY,
        )
    book.tasks[tid] = task
    order = book.order
    if not order or tid > order[-1]:
        order.append(tid)
    else:  # a client-made id (durable intake) may sort before the newest: keep the order
        insort(order, tid)
    book.totals.submitted += 1
    if spec.idempotency_key is not None and ev.workflow_id is None:
        book.idem[spec.idempotency_key] = tid
    if ev.uses_results:
        book.refs.add(tid)
    if ev.parents:
        link_parents(book, task, ev.parents)
    if spec.deadline is not None:
        heappush(book.deadlines, (spec.deadline, tid))
    # Book.enter(), inlined: this runs once per submitted task.
    book.by_state[state] += 1
    book.waiting += 1
    q = spec.queue
    wq = book.waiting_by_queue
    wq[q] = wq.get(q, 0) + 1
    b = "normal" if priority == 0 else band(priority)
    wb = book.waiting_by_band
    wb[b] = wb.get(b, 0) + 1
    if state is READY:
        seq = book.seq
        book.seq = seq + 1
        name = spec.name
        queue = book.placement.queue_of(spec)
        if book.aging:
            queue.push(task, priority, at, seq)
        else:
            # make_key() for a non-aging queue, inlined; the task is new, so not queued.
            # readyq.token(), inlined too.
            queue.push_key(task, seq - priority * PRIORITY_UNIT, seq << 16 | priority & 0xFFFF)
        rn = book.ready_by_name
        rn[name] = rn.get(name, 0) + 1
    elif ev.not_before is not None and tid not in book.unresolved:
        heappush(book.timers, (ev.not_before, tid))


def apply_submitted(book: Book, evs: list[TaskSubmitted]) -> None:
    """``on_submitted`` for each of ``evs``, events this state just made (live submit):
    the same changes, with the lookups hoisted out of the loop, the counters added once
    per batch and the queue pushes made per class. Anything but a plain READY task (no
    parents, deadline, idempotency key or aging) takes ``on_submitted`` in its turn."""
    tasks = book.tasks
    order = book.order
    order_append = order.append
    newest = order[-1] if order else ""
    share = share_spec
    plain: list[LiveTask] = []
    seqs: list[int] = []
    seq = book.seq
    general = book.aging
    for ev in evs:
        spec = ev.spec
        if (
            general
            or ev.state is not READY
            or ev.parents
            or ev.uses_results
            or ev.workflow_id is not None
            or spec.deadline is not None
            or spec.idempotency_key is not None
        ):
            book.seq = seq
            on_submitted(book, ev)
            seq = book.seq
            continue
        tid = ev.id
        at = ev.at
        share(spec)
        # No ``extra``: READY since submission, its "ready" time is submitted_at (see
        # records.stamp), and every other field is at its default.
        task = LiveTask(id=tid, spec=spec, state=READY, submitted_at=at, priority=spec.priority)
        tasks[tid] = task
        if tid > newest:
            order_append(tid)
            newest = tid
        else:  # behind a client-made id (durable intake): keep the order
            insort(order, tid)
        plain.append(task)
        seqs.append(seq)
        seq += 1
    book.seq = seq
    if not plain:
        return
    n = len(plain)
    book.totals.submitted += n
    book.by_state[READY] += n
    book.waiting += n
    specs = list(map(SPEC, plain))
    count_into(book.waiting_by_queue, map(QUEUE, specs))
    count_into(book.ready_by_name, map(NAME, specs))
    book.count_bands(plain, 1)
    classes = list(map(CLASS, specs))
    placement = book.placement
    first = classes[0]
    if classes.count(first) == n:
        placement.queue(first).push_new(plain, seqs)
        return
    groups: dict[ClassKey, tuple[list[LiveTask], list[int]]] = {}
    for key, task, task_seq in zip(classes, plain, seqs, strict=True):
        group = groups.get(key)
        if group is None:
            groups[key] = ([task], [task_seq])
        else:
            group[0].append(task)
            group[1].append(task_seq)
    for key, (members, member_seqs) in groups.items():
        placement.queue(key).push_new(members, member_seqs)


def link_parents(book: Book, task: LiveTask, parents: tuple[str, ...]) -> None:
    """Register a new task as a child of its parents and count those still pending."""
    tid = task.id
    children = book.children
    tasks = book.tasks
    n = 0
    for p in parents:
        kids = children.get(p)
        if kids is None:
            children[p] = [tid]
        else:
            kids.append(tid)
        parent = tasks.get(p)
        # An evicted parent was terminal and had resolved its children before it went.
        if parent is None:
            continue
        pst = parent.state
        # _resolves(), short-cut for the states a parent is usually in here.
        if pst in UNFINISHED or (pst is not SUCCEEDED and not book.resolves(pst, task)):
            n += 1
    if n:
        book.unresolved[tid] = n


def count_into(counts: dict[str, int], values: Iterable[str]) -> None:
    """Add one to ``counts`` per value (C-level counting, then one update per distinct)."""
    for value, n in Counter(values).items():
        counts[value] = counts.get(value, 0) + n
