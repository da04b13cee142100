"""The scheduler's snapshot codec: a book to MessagePack and back.

A snapshot holds the logical state only (``records.Snapshot``); every index is derived again on
restore (``Book.rebuild_indexes``). Schema 2 holds the scheduler's ``LiveTask`` records, in
chunks that a restore decodes one at a time (see ``decode_snapshot``), and no ready-queue list
(each READY task's token holds its seq); a schema 1 snapshot (full ``Task`` records and an
``(id, seq)`` list) is still read, so an upgraded master restores without loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from operator import attrgetter
from typing import cast

import msgspec

from ..errors import InvalidRequestError
from .book import CLASS, HELD_STATES, Book, share_restored
from .ids import IdGenerator
from .live import LiveTask, from_task
from .model import SCHEMA_VERSION, Task, TaskState
from .pqueue import make_key
from .records import BreakerSnapshot, RegionSnapshot, Snapshot, ready_at

__all__ = ["decode_snapshot", "encode_snapshot", "restore_book"]


_encoder = msgspec.msgpack.Encoder()
#: Tasks per chunk of a schema 2 snapshot's ``tasks`` (see decode_snapshot).
CHUNK = 4096
_chunk_decoder = msgspec.msgpack.Decoder(list[LiveTask])
#: A READY task's ready-queue token; tokens sort like their ``seq`` (the high bits).
_TOKEN = cast("Callable[[LiveTask], int]", attrgetter("ready_key"))


def encode_snapshot(book: Book) -> bytes:
    # No ``queue``: each READY task's ``ready_key`` holds its seq (see _restore_queue), and a
    # list of a million (id, seq) pairs made at every snapshot only grew the leader's heap.
    tasks = list(book.tasks.values())
    snap = Snapshot[list[LiveTask]](
        schema_version=SCHEMA_VERSION,
        settings=book.settings,
        id_last_ms=book.ids.last_ms,
        id_counter=book.ids.counter,
        seq=book.seq,
        totals=book.totals,
        tasks=[tasks[i : i + CHUNK] for i in range(0, len(tasks), CHUNK)],
        workflows=book.workflows.records(),
        regions=[
            RegionSnapshot(info=r.info, expires_at=r.expires_at, last_renewed=r.last_renewed)
            for r in book.regions.records()
        ],
        breakers=[
            BreakerSnapshot(
                scope=k[0],
                region=k[1],
                name=k[2],
                state=b.state,
                window=list(b.window),
                opened_at=b.opened_at,
                probe=b.probe,
            )
            for k, b in book.breakers.items()
        ],
        intake_seq=book.intake_seq,
        schedules=book.schedules.records(),
    )
    return _encoder.encode(snap)


class _Version(msgspec.Struct):
    """The one field of a snapshot read before the rest: which schema the rest follows."""

    schema_version: int


#: A decoded snapshot: schema 2's tasks still encoded, one ``Raw`` per chunk; schema 1's.
Decoded = Snapshot[msgspec.Raw] | Snapshot[Task]


def decode_snapshot(data: bytes) -> Decoded:
    """Decode all but a schema 2 snapshot's tasks, which ``restore_book`` decodes a chunk at
    a time: each chunk's spare objects (a spec's decoded name and empty ``kwargs``, replaced
    by shared ones) are freed before the next chunk is decoded, which reuses their memory.
    Decoded all at once, a million tasks left ~130 MB of such holes in the restored heap."""
    try:
        version = msgspec.msgpack.decode(data, type=_Version).schema_version
        if version == SCHEMA_VERSION:
            return msgspec.msgpack.decode(data, type=Snapshot[msgspec.Raw])
        if version == 1:
            # Schema 1 held full ``Task`` records: the same state, every field in one record.
            return msgspec.msgpack.decode(data, type=Snapshot[Task])
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"snapshot: cannot decode: {exc}", field="snapshot") from exc
    raise InvalidRequestError(
        f"snapshot: schema version {version}, this build reads 1 and {SCHEMA_VERSION}",
        field="schema_version",
    )


def _task_chunks(snap: Decoded) -> Iterator[list[LiveTask]]:
    if snap.schema_version == 1:
        yield [from_task(cast("Task", t)) for t in snap.tasks]
        return
    for raw in snap.tasks:
        try:
            yield _chunk_decoder.decode(cast("msgspec.Raw", raw))
        except msgspec.DecodeError as exc:
            raise InvalidRequestError(f"snapshot: cannot decode: {exc}", field="snapshot") from exc


def _restore_queue(book: Book, queue: list[tuple[str, int]]) -> None:
    """Queue the READY tasks again in ``seq`` order: from a schema 1 snapshot's ``queue``,
    else from each one's token (``ready_key``), which keeps its seq and effective priority."""
    tasks = book.tasks
    placement = book.placement
    rn = book.ready_by_name
    if queue:
        for tid, seq in queue:
            task = tasks[tid]
            spec = task.spec
            placement.queue(CLASS(spec)).push(task, task.priority + task.boost, ready_at(task), seq)
            rn[spec.name] = rn.get(spec.name, 0) + 1
        return
    ready = [t for t in tasks.values() if t.state is TaskState.READY]
    if any(t.ready_key is None for t in ready):
        raise InvalidRequestError("snapshot: a READY task without its queue token", field="tasks")
    ready.sort(key=_TOKEN)
    for task in ready:
        tok = _TOKEN(task)
        seq = tok >> 16
        spec = task.spec
        p = task.priority + task.boost
        q = placement.queue(CLASS(spec))
        # The stored token is the one push() would make: reuse it rather than a copy.
        q.push_key(task, make_key(p, ready_at(task), seq, q.rate), tok)
        rn[spec.name] = rn.get(spec.name, 0) + 1


def restore_book(book: Book, snap: Decoded) -> None:
    """Fill a new book from a snapshot: the records, then every index derived from them."""
    book.ids = IdGenerator(last_ms=snap.id_last_ms, counter=snap.id_counter)
    book.totals = snap.totals
    book.workflows.restore(snap.workflows)
    tasks = book.tasks
    order = book.order
    for chunk in _task_chunks(snap):
        for task in chunk:
            share_restored(task)
            tasks[task.id] = task
            order.append(task.id)
    # Creation order; client-made ids (durable intake) may have come in out of it.
    book.order.sort()
    book.intake_seq = snap.intake_seq
    book.schedules.restore(snap.schedules)
    book.rebuild_indexes()
    _restore_queue(book, snap.queue)
    book.seq = snap.seq
    lease = snap.settings.region_lease_seconds
    for r in snap.regions:
        book.regions.restore(r.info, r.last_renewed, r.expires_at, lease)
    for task in tasks.values():
        if task.state in HELD_STATES and task.region in book.regions:
            book.regions.hold(task.region, task.id)
    for b in snap.breakers:
        book.breakers.restore((b.scope, b.region, b.name), b.state, b.window, b.opened_at, b.probe)
