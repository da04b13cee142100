"""The leader's side of the durable intake: follow it, apply its entries, let readers catch up.

During a term the leader follows ``<PREFIX>_INTAKE`` from the entry after the last one its
state applied. Entries that arrive together are applied as one batch (``apply_intake`` in the
core) on the next turn of the event loop, so a burst costs one command and one log append.

A client that submitted through the intake holds an id the master may not have applied yet.
A request that names such an id and finds nothing (``NotFoundError``, ``UnknownTaskError``)
waits with :meth:`IntakeApplier.caught_up` until everything stored in the intake when it
asked is applied, and is then handled again: a client reads its own writes.

The follower is watched. The client library re-creates an ordered consumer on its own when it
sees a gap or misses heartbeats, but it tries once per missed-heartbeat period, and a
re-creation that fails while the stream has no Raft leader (a cluster node lost, a partition
healing) can leave it silent for longer than a reader waits. So once a second, when nothing was
delivered, the applier compares what it has seen with the stream's last sequence; behind on two
checks in a row, it drops the follower and follows again from the entry after the last it saw.
Deliveries from a dropped follower are ignored, and an entry seen before is never taken twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import msgspec

from ..core import Event, IntakeItem, SchedulerState
from ..core.ids import client_id_ms
from ..engine import IntakeFollower, IntakeStream
from ..errors import IntakeBehindError, NotFoundError, TierqError, UnknownTaskError
from ..protocol import IntakeEntry, IntakeId

__all__ = ["IntakeApplier", "intake_behind", "may_be_unapplied"]

log = logging.getLogger("tierq.master")

#: Entries applied in one command and one log append (a backlog is taken in slices).
MAX_BATCH = 1000
#: Longest a request naming an unknown client-made id waits for the intake to be applied.
CATCH_UP_WAIT = 5.0
#: How often an idle follower is checked against the stream, seconds.
WATCH_EVERY = 1.0

_entry = msgspec.msgpack.Decoder(IntakeEntry)
_entry_id = msgspec.msgpack.Decoder(IntakeId)


def may_be_unapplied(exc: TierqError) -> bool:
    """Whether ``exc`` is a "not found" about an id a client made (maybe not applied yet)."""
    if not isinstance(exc, NotFoundError | UnknownTaskError):
        return False
    return any(client_id_ms(i) is not None for i in exc.ids)


def intake_behind(exc: TierqError) -> IntakeBehindError:
    """What to answer when ``exc`` names a client-made id and the intake was not applied in
    time: the task may well be stored there, so "not found" would be a false answer."""
    return IntakeBehindError(
        f"{exc.message}; it may have been submitted through the intake, which this master "
        f"has not applied yet: nothing was done, resend the request"
    )


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
        #: Which follower's deliveries count (a dropped one may still deliver a few).
        self._generation = 0
        #: The last sequence taken into the buffer (or applied before this term).
        self._seen = state.intake_seq
        #: Deliveries taken so far (the watch's sign of life).
        self._delivered = 0
        #: (intake sequence, future) of requests waiting until it is applied.
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._watch: asyncio.Task[None] | None = None
        self._stopped = False
        #: Times the follower was found stalled and followed again (for logs and tests).
        self.refollowed = 0

    async def start(self) -> None:
        self._seen = max(self._seen, self.state.intake_seq)
        await self._follow()
        self._watch = asyncio.create_task(self._watch_follower())

    async def _follow(self) -> None:
        """Follow the intake from the entry after the last one seen, as a new generation."""
        self._generation += 1
        generation = self._generation

        def on_entry(seq: int, data: bytes) -> None:
            if generation == self._generation:
                self._on_entry(seq, data)

        self._follower = await self.stream.follow(self._seen, on_entry)

    async def _drop_follower(self) -> None:
        self._generation += 1
        follower, self._follower = self._follower, None
        if follower is not None:
            await follower.stop()

    async def _watch_follower(self) -> None:
        delivered = self._delivered
        behind_before = False
        while not self._stopped:
            await asyncio.sleep(WATCH_EVERY)
            if self._follower is not None and self._delivered != delivered:
                delivered, behind_before = self._delivered, False
                continue  # it delivers: alive
            try:
                last = await self.stream.last_seq()
            except TierqError as exc:  # the stream cannot answer now; look again later
                log.debug("intake watch: %s", exc)
                continue
            behind = last > self._seen
            if behind and (behind_before or self._follower is None):
                await self._refollow(last)
                behind = False  # the new follower gets a period of its own
            delivered, behind_before = self._delivered, behind

    async def _refollow(self, last: int) -> None:
        log.warning(
            "the intake follower is silent at entry %d of %d; following again", self._seen, last
        )
        await self._drop_follower()
        try:
            await self._follow()
        except TierqError as exc:  # no stream leader yet: the next check tries again
            log.warning("following the intake again failed: %s", exc)
            return
        self.refollowed += 1

    async def stop(self) -> None:
        self._stopped = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        await self._drop_follower()
        self._buffer.clear()
        waiting, self._waiting = self._waiting, []
        for _, future in waiting:  # handled again now: a deposed master says nothing
            if not future.done():
                future.set_result(None)

    def _on_entry(self, seq: int, data: bytes) -> None:
        if self._stopped or seq <= self._seen:
            return
        self._seen = seq
        self._delivered += 1
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

    async def caught_up(self, timeout: float | None = None) -> bool:
        """Wait until every entry stored in the intake now is applied; False on timeout
        (``CATCH_UP_WAIT`` unless given)."""
        timeout = CATCH_UP_WAIT if timeout is None else timeout
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
