"""The leader's side of the durable intake: follow it, apply its entries, let readers catch up.

During a term the leader follows ``<PREFIX>_INTAKE`` from the entry after the last one its
state applied. Entries that arrive together are applied as one batch (``apply_intake`` in the
core) on the next turn of the event loop, so a burst costs one command and one log append.

A client that submitted through the intake holds an id the master may not have applied yet.
A request that names such an id and finds nothing (``NotFoundError``, ``UnknownTaskError``)
waits with :meth:`IntakeApplier.caught_up` until everything stored in the intake when it
asked is applied, and is then handled again: a client reads its own writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec

from ..core import Event, IntakeItem, SchedulerState
from ..core.ids import client_id_ms
from ..engine import IntakeFollower, IntakeStream
from ..errors import NotFoundError, TierqError, UnknownTaskError
from ..protocol import IntakeEntry, IntakeId

__all__ = ["IntakeApplier", "may_be_unapplied"]

log = logging.getLogger("tierq.master")

#: Entries applied in one command and one log append (a backlog is taken in slices).
MAX_BATCH = 1000
#: Longest a request naming an unknown client-made id waits for the intake to be applied.
CATCH_UP_WAIT = 5.0

_entry = msgspec.msgpack.Decoder(IntakeEntry)
_entry_id = msgspec.msgpack.Decoder(IntakeId)


def may_be_unapplied(exc: TierqError) -> bool:
    """Whether ``exc`` is a "not found" about an id a client made (maybe not applied yet)."""
    if not isinstance(exc, NotFoundError | UnknownTaskError):
        return False
    return any(client_id_ms(i) is not None for i in exc.ids)


def decode_entry(seq: int, data: bytes) -> IntakeItem:
    """An intake message as the core takes it; an undecodable spec keeps the reason."""
    try:
        entry = _entry.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        try:
            ident = _entry_id.decode(data).id
        except (msgspec.ValidationError, msgspec.DecodeError):
            ident = ""
        return IntakeItem(seq, ident, None, str(exc)[:300])
    return IntakeItem(seq, entry.id, entry.spec)


class IntakeApplier:
    """Follows the intake for one term; ``commit`` takes the events of each batch.

    Args:
        state: the leader's state (read for ``intake_seq``, changed by ``apply_intake``).
        commit: queues the batch's events for the log and serves what they made ready.
        now: the term's clock.
        fail: called when applying raises (a bug): the term must end.
    """

    def __init__(
        self,
        stream: IntakeStream,
        state: SchedulerState,
        *,
        commit: Callable[[list[Event], float], None],
        now: Callable[[], float],
        fail: Callable[[str], None],
    ) -> None:
        self.stream = stream
        self.state = state
        self._commit = commit
        self._now = now
        self._fail = fail
        self._buffer: list[IntakeItem] = []
        self._scheduled = False
        self._follower: IntakeFollower | None = None
        #: (intake sequence, future) of requests waiting until it is applied.
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._stopped = False

    async def start(self) -> None:
        self._follower = await self.stream.follow(self.state.intake_seq, self._on_entry)

    async def stop(self) -> None:
        self._stopped = True
        follower, self._follower = self._follower, None
        if follower is not None:
            await follower.stop()
        self._buffer.clear()
        waiting, self._waiting = self._waiting, []
        for _, future in waiting:  # handled again now: a deposed master says nothing
            if not future.done():
                future.set_result(None)

    def _on_entry(self, seq: int, data: bytes) -> None:
        if self._stopped:
            return
        self._buffer.append(decode_entry(seq, data))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._apply)

    def _apply(self) -> None:
        self._scheduled = False
        if self._stopped or not self._buffer:
            return
        items = self._buffer[:MAX_BATCH]
        del self._buffer[:MAX_BATCH]
        if self._buffer:  # a backlog: the rest on the next turn, after what else waits
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._apply)
        now = self._now()
        try:
            events = self.state.apply_intake(items, now)
        except Exception as exc:  # a bug: the state may be half-changed
            log.exception("applying %d intake entries failed", len(items))
            self._stopped = True
            self._fail(f"applying intake entries raised {type(exc).__name__}")
            return
        if events:
            self._commit(events, now)
        if self._waiting:
            applied = self.state.intake_seq
            still = []
            for target, future in self._waiting:
                if target > applied:
                    still.append((target, future))
                elif not future.done():
                    future.set_result(None)
            self._waiting = still

    async def caught_up(self, timeout: float = CATCH_UP_WAIT) -> bool:
        """Wait until every entry stored in the intake now is applied; False on timeout."""
        target = await self.stream.last_seq()
        if self.state.intake_seq >= target:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (target, future)
        self._waiting.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            return False
        finally:
            if entry in self._waiting:
                self._waiting.remove(entry)
        return True
