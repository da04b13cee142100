"""Group commit: many submissions ride one fenced, atomic log append.

With ``sync_interval: always`` every append costs an fsync, so appending per event caps the
master at a few thousand events/s (NATS.md table b6). The committer appends whatever is
pending as one atomic batch as soon as the previous append returns: at low load each
submission goes out at once, at high load many share an append (the classic database group
commit, as in PostgreSQL's ``commit_delay``-free WAL flushing).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

from ..errors import EngineUnavailableError, FencedError, PayloadTooLargeError, TierqError
from .codec import array_header_size, pack_array
from .log import MAX_BATCH_MSGS, EventLog

__all__ = ["CommitterStatistics", "GroupCommitter"]

log = logging.getLogger("tierq.engine.commit")


@dataclass(frozen=True, slots=True)
class CommitterStatistics:
    """A snapshot of a :class:`GroupCommitter`'s counters."""

    appends: int  #: log appends done
    items: int  #: items made durable
    messages: int  #: log messages written (items are packed several per message)
    bytes: int  #: payload bytes written
    last_seq: int  #: last log sequence written (0 before the first append)
    pending_items: int  #: items submitted and not yet durable
    closed: bool  #: no longer accepting submissions


class _Submission:
    __slots__ = ("future", "items", "nbytes")

    def __init__(self, items: Sequence[bytes], nbytes: int, future: asyncio.Future[int]) -> None:
        self.items = items
        self.nbytes = nbytes
        self.future = future


class GroupCommitter:
    """Packs submitted items into msgpack arrays and appends them to an :class:`EventLog`.

    ``submit`` order is log order. Each future resolves with the log sequence of the
    message holding the submission's last item once that message is durable; an empty
    submission is a barrier that resolves once everything submitted before it is.

    Owns one background task inside a TaskGroup; use ``async with``. Shutdown order:
    stop accepting, append what is pending, end the loop, leave the TaskGroup.

    On :class:`FencedError` (or an append whose outcome stays unknown) every pending future
    fails with that error and the committer stops accepting: the caller lost its claim on
    the log and must step down, not retry.

    Args:
        max_msg_bytes: largest packed message (defaults to what the log accepts).
        max_append_msgs: messages per atomic append (the server allows 1000).
        max_append_bytes: bytes per append; more pending than this is split into several
            appends, at submission boundaries.
        on_fail: called once with the error when the committer stops accepting, so that the
            owner steps down even when no caller is waiting on a future (a snapshot barrier).
    """

    def __init__(
        self,
        log: EventLog,
        *,
        max_msg_bytes: int | None = None,
        max_append_msgs: int = MAX_BATCH_MSGS,
        max_append_bytes: int = 64 * 1024 * 1024,
        on_fail: Callable[[TierqError], None] | None = None,
    ) -> None:
        self._log = log
        self._on_fail = on_fail
        self.max_msg_bytes = min(max_msg_bytes or log.max_payload_bytes, log.max_payload_bytes)
        self.max_append_msgs = min(max_append_msgs, MAX_BATCH_MSGS)
        self.max_append_bytes = max_append_bytes
        self._pending: list[_Submission] = []
        self._pending_items = 0
        self._wakeup = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._closing = False
        self._error: TierqError | None = None
        self._appends = 0
        self._items = 0
        self._messages = 0
        self._bytes = 0
        self._last_seq = log.expected_seq or 0

    # -- public ----------------------------------------------------------------------------

    def submit(self, items: Sequence[bytes]) -> asyncio.Future[int]:
        """Queue already-encoded items for the log; never waits.

        Raises:
            PayloadTooLargeError: one item cannot fit in a log message.
            FencedError / EngineUnavailableError: the committer has failed or is closed.
        """
        if self._error is not None:
            raise type(self._error)(self._error.message)
        if self._closing or self._tg is None:
            raise EngineUnavailableError("the group committer is not running")
        limit = self.max_msg_bytes - 5  # room for the largest array header
        nbytes = 0
        for item in items:
            if len(item) > limit:
                raise PayloadTooLargeError(
                    f"log item of {len(item)} bytes is over the limit of {limit} bytes"
                )
            nbytes += len(item)
        if self._max_messages(nbytes) > self.max_append_msgs:
            raise PayloadTooLargeError(
                f"a submission of {nbytes} bytes does not fit one atomic log append"
            )
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append(_Submission(items, nbytes, future))
        self._pending_items += len(items)
        self._wakeup.set()
        return future

    @property
    def failed(self) -> bool:
        """Whether some submission was refused or left unresolved (its items may be lost)."""
        return self._error is not None

    def statistics(self) -> CommitterStatistics:
        return CommitterStatistics(
            appends=self._appends,
            items=self._items,
            messages=self._messages,
            bytes=self._bytes,
            last_seq=self._last_seq,
            pending_items=self._pending_items,
            closed=self._closing or self._error is not None,
        )

    async def __aenter__(self) -> GroupCommitter:
        if self._log.expected_seq is None:
            raise RuntimeError("open the EventLog before starting its GroupCommitter")
        self._last_seq = self._log.expected_seq
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._tg.create_task(self._run(), name="tierq-group-commit")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing = True
        self._wakeup.set()
        assert self._tg is not None
        await self._tg.__aexit__(exc_type, exc, tb)

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                if not self._pending:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                batch, self._pending = self._pending, []
                try:
                    await self._commit(batch)
                except TierqError as exc:
                    self._fail(exc, batch)
                    return
        except asyncio.CancelledError:
            # A shutdown (the owner's task was cancelled), not a failure of the log: pending
            # callers hear of it, the owner is not told to step down and nothing is logged.
            self._fail(EngineUnavailableError("the group committer was cancelled"), [], False)
            raise

    def _fail(self, exc: TierqError, batch: list[_Submission], failure: bool = True) -> None:
        self._error = exc
        if failure:
            what = "fenced" if isinstance(exc, FencedError) else "failed"
            log.error("log append %s; refusing further submissions: %s", what, exc)
        for sub in [*batch, *self._pending]:
            if not sub.future.done():
                sub.future.set_exception(type(exc)(exc.message))
        self._pending = []
        self._pending_items = 0
        if failure and self._on_fail is not None:
            self._on_fail(exc)

    async def _commit(self, batch: list[_Submission]) -> None:
        start = 0
        while start < len(batch):
            end, messages, last_msg = self._pack(batch, start)
            if messages:
                seq = await self._log.append(messages)
            else:
                seq = self._last_seq
            first = seq - len(messages) + 1
            n_items = 0
            for sub, idx in zip(batch[start:end], last_msg, strict=True):
                n_items += len(sub.items)
                if not sub.future.done():
                    sub.future.set_result(first + idx if idx >= 0 else first - 1)
            # Resolve first, then count: a waiter never sees statistics behind its result.
            self._pending_items -= n_items
            if messages:
                self._appends += 1
                self._messages += len(messages)
                self._bytes += sum(len(m) for m in messages)
                self._last_seq = seq
            self._items += n_items
            start = end

    def _pack(self, batch: list[_Submission], start: int) -> tuple[int, list[bytes], list[int]]:
        """Pack submissions from ``start`` into messages for one append.

        Returns the end index, the messages, and per submission the index of the message
        holding its last item (-1: before the first message of this append).
        """
        messages: list[bytes] = []
        current: list[bytes] = []
        size = 0
        total = 0
        last_msg: list[int] = []
        limit = self.max_msg_bytes
        end = start
        for sub in batch[start:]:
            # Leave the rest for the next append if this submission might not fit.
            if end > start and (
                len(messages) + 1 + self._max_messages(sub.nbytes) > self.max_append_msgs
                or total + sub.nbytes > self.max_append_bytes
            ):
                break
            for item in sub.items:
                grown = size + len(item) + array_header_size(len(current) + 1)
                if current and grown > limit:
                    messages.append(pack_array(current))
                    current, size = [], 0
                current.append(item)
                size += len(item)
                total += len(item)
            last_msg.append(len(messages) if current else len(messages) - 1)
            end += 1
        if current:
            messages.append(pack_array(current))
        if len(messages) > self.max_append_msgs:
            # One submission alone needs more messages than an atomic append can carry.
            raise PayloadTooLargeError(
                f"a submission needs {len(messages)} log messages; "
                f"at most {self.max_append_msgs} fit one atomic append"
            )
        return end, messages, last_msg

    def _max_messages(self, nbytes: int) -> int:
        # Greedy packing closes a message only when the next item does not fit, so two
        # neighbouring messages always hold more than the limit: at most 2*n/limit + 1.
        return 2 * nbytes // (self.max_msg_bytes - 5) + 1
