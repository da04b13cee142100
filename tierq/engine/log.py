"""The master's durable log: one JetStream stream, appended with expected-sequence fencing.

Every append says which sequence the writer believes is last
(``Nats-Expected-Last-Sequence``). A deposed master still holding an old view is refused
(:class:`FencedError`) instead of interleaving its events with the new leader's. Appends of
several messages use a JetStream atomic batch (ADR-50): all stored or none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from types import TracebackType

import nats.errors
import nats.js.errors
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    Header,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext

from ..errors import EngineUnavailableError, FencedError, PayloadTooLargeError, TierqError
from ._errors import map_nats_errors, translate
from .codec import DEFAULT_MAX_BYTES
from .connect import Engine
from .subjects import Subjects

__all__ = ["MAX_BATCH_MSGS", "EventLog", "LogReader"]

log = logging.getLogger("tierq.engine.log")

#: The server's default limit of messages in one atomic batch.
MAX_BATCH_MSGS = 1000

#: Room left in every message for the headers an append adds.
HEADER_ALLOWANCE = 512

_WRITER = "Tierq-Writer"
_APPEND = "Tierq-Append"


class EventLog:
    """Append-only log on the stream ``<PREFIX>_LOG`` (subject ``<prefix>.log``).

    One writer at a time: :meth:`open` reads the last sequence and every :meth:`append`
    expects it. Appends are serialised by a lock; readers need no coordination.

    Args:
        max_msg_size: the stream's ``max_msg_size``; also bounded by the server's ``max_payload``.
        durable: file storage (True) or memory storage (False, for tests and benchmarks).
        replicas: stream replicas (3 in a cluster for the durable profile).
        retry_timeout: how long an append with an unknown outcome (timeout, reconnect) is
            retried, after checking whether the earlier try landed, before giving up.
    """

    def __init__(
        self,
        engine: Engine,
        subjects: Subjects | None = None,
        *,
        max_msg_size: int = DEFAULT_MAX_BYTES,
        durable: bool = True,
        replicas: int = 1,
        writer_id: str | None = None,
        timeout: float | None = None,
        retry_timeout: float = 10.0,
    ) -> None:
        self._engine = engine
        self.subjects = subjects or Subjects()
        self.stream = self.subjects.log_stream
        self.subject = self.subjects.log_subject
        self.max_msg_size = max_msg_size
        self.durable = durable
        self.replicas = replicas
        self.writer_id = writer_id or uuid.uuid4().hex
        self.timeout = timeout if timeout is not None else engine.options.request_timeout
        self.retry_timeout = retry_timeout
        self._expected: int | None = None
        self._fenced: FencedError | None = None
        self._broken: str | None = None
        self._appends = 0
        self._lock = asyncio.Lock()

    @property
    def js(self) -> JetStreamContext:
        return self._engine.js

    @property
    def expected_seq(self) -> int | None:
        """The sequence the next append expects to be last (None before :meth:`open`)."""
        return self._expected

    @property
    def max_payload_bytes(self) -> int:
        """Largest payload one appended message may carry."""
        return min(self.max_msg_size, self._engine.max_payload) - HEADER_ALLOWANCE

    @property
    def fenced(self) -> bool:
        return self._fenced is not None

    # -- setup -----------------------------------------------------------------------------

    def stream_config(self) -> StreamConfig:
        return StreamConfig(
            name=self.stream,
            subjects=[self.subject],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE if self.durable else StorageType.MEMORY,
            num_replicas=self.replicas,
            max_msg_size=self.max_msg_size,
            allow_atomic=True,
            allow_direct=True,
            description="tierq master log",
        )

    async def provision(self) -> None:
        """Create the stream, or bring an existing one to this config (idempotent)."""
        await ensure_stream(self._engine, self.stream_config())

    async def open(self) -> int:
        """Provision, then take the stream's last sequence as the one to expect. Returns it.

        A new leader calls this after acquiring the lease and before replaying; calling it
        again re-reads the tail (after a FencedError, or an append whose outcome stayed
        unknown), which clears the fenced/broken state.
        """
        await self.provision()
        self._expected = await self.last_seq()
        self._fenced = None
        self._broken = None
        return self._expected

    # -- queries ---------------------------------------------------------------------------

    async def last_seq(self) -> int:
        """The last sequence stored in the stream (0 when nothing was ever appended)."""
        with map_nats_errors(f"stream info of {self.stream}"):
            info = await self.js.stream_info(self.stream)
        return info.state.last_seq

    async def first_seq(self) -> int:
        with map_nats_errors(f"stream info of {self.stream}"):
            info = await self.js.stream_info(self.stream)
        return info.state.first_seq

    def read(self, after_seq: int = 0, *, batch: int = 1000) -> LogReader:
        """Iterate ``(seq, payload)`` for every message after ``after_seq``, up to the tail at
        the time iteration starts. Use ``async for`` (closes itself when exhausted) or
        ``async with`` to close early."""
        return LogReader(self, after_seq, batch=batch)

    async def purge(self, upto_seq: int) -> None:
        """Drop messages with sequence <= ``upto_seq`` (after a snapshot covered them)."""
        if upto_seq <= 0:
            return
        with map_nats_errors(f"purge of {self.stream}"):
            # JetStream purges up to but *not including* ``seq``.
            await self.js.purge_stream(self.stream, seq=upto_seq + 1)

    # -- appending -------------------------------------------------------------------------

    async def append(self, payloads: Sequence[bytes]) -> int:
        """Append ``payloads`` as consecutive messages, all or nothing. Returns the last seq.

        Raises:
            FencedError: another writer appended since this one's view; nothing was stored.
                The log then refuses every append until :meth:`open` is called again.
            PayloadTooLargeError: a payload is over :attr:`max_payload_bytes`.
            EngineUnavailableError: NATS did not confirm within ``retry_timeout``; the
                outcome is unknown and the log refuses appends until :meth:`open`.
        """
        if not payloads:
            raise ValueError("append needs at least one payload")
        if len(payloads) > MAX_BATCH_MSGS:
            raise ValueError(f"at most {MAX_BATCH_MSGS} messages per append, got {len(payloads)}")
        limit = self.max_payload_bytes
        for p in payloads:
            if len(p) > limit:
                raise PayloadTooLargeError(
                    f"log message of {len(p)} bytes is over the limit of {limit} bytes"
                )
        async with self._lock:
            self._check_writable()
            assert self._expected is not None
            self._appends += 1
            append_id = f"{self.writer_id}.{self._appends}"
            seq = await self._append_with_retry(payloads, self._expected, append_id)
            self._expected = seq
            return seq

    def _check_writable(self) -> None:
        if self._fenced is not None:
            raise FencedError(self._fenced.message)
        if self._broken is not None:
            raise EngineUnavailableError(self._broken)
        if self._expected is None:
            raise RuntimeError("EventLog.open() must be called before append()")

    async def _append_with_retry(
        self, payloads: Sequence[bytes], expected: int, append_id: str
    ) -> int:
        what = f"append to {self.stream}"
        deadline = time.monotonic() + self.retry_timeout
        delay = 0.05
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._append_once(payloads, expected, append_id, attempt)
            except nats.js.errors.APIError as exc:
                # A definite answer from the stream: nothing was stored.
                err = translate(exc, what)
                if isinstance(err, FencedError):
                    self._fenced = err
                raise err from exc
            except nats.errors.MaxPayloadError as exc:
                raise PayloadTooLargeError(
                    f"{what}: message over the server's max_payload"
                ) from exc
            except (TimeoutError, nats.errors.Error, OSError) as exc:
                # No answer: the batch may or may not be stored. Find out before retrying.
                last_exc: BaseException = exc
                log.warning("%s: %r (attempt %d); checking the tail", what, exc, attempt)
            if time.monotonic() >= deadline:
                self._broken = (
                    f"{what}: outcome unknown after {self.retry_timeout:.1f} s: {last_exc!r}"
                )
                raise EngineUnavailableError(self._broken) from last_exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
            try:
                landed = await self._landed(expected, len(payloads), append_id)
            except TierqError as exc:
                if isinstance(exc, FencedError):
                    self._fenced = exc
                    raise
                log.warning("%s: tail check failed: %s", what, exc)
                continue
            if landed is not None:
                return landed

    async def _landed(self, expected: int, n: int, append_id: str) -> int | None:
        """After an unanswered append: its last seq if it was stored, None if not.

        Raises FencedError when someone else's messages follow ``expected``.
        """
        what = f"tail check of {self.stream}"
        last = await self.last_seq()
        if last == expected:
            return None
        if last == expected + n:
            with map_nats_errors(what):
                msg = await self.js.get_msg(self.stream, seq=last)
            headers = msg.headers or {}
            if headers.get(_APPEND) == append_id:
                return last
        raise FencedError(
            f"append to {self.stream}: refused, another writer appended (last {last})"
        )

    async def _append_once(
        self, payloads: Sequence[bytes], expected: int, append_id: str, attempt: int
    ) -> int:
        nc = self._engine.nc
        tail = {_WRITER: self.writer_id, _APPEND: append_id}
        if len(payloads) == 1:
            headers = {Header.EXPECTED_LAST_SEQUENCE.value: str(expected), **tail}
            ack = await self.js.publish(
                self.subject, payloads[0], timeout=self.timeout, headers=headers
            )
            return ack.seq
        # Atomic batch: the expected sequence goes on the *first* message only (the server
        # checks later ones against the batch's own staged tail), commit on the last.
        batch_id = f"{append_id}.{attempt}"
        last = len(payloads)
        for i, payload in enumerate(payloads[:-1], start=1):
            headers = {Header.BATCH_ID.value: batch_id, Header.BATCH_SEQUENCE.value: str(i)}
            if i == 1:
                headers[Header.EXPECTED_LAST_SEQUENCE.value] = str(expected)
            await nc.publish(self.subject, payload, headers=headers)
        headers = {
            Header.BATCH_ID.value: batch_id,
            Header.BATCH_SEQUENCE.value: str(last),
            Header.BATCH_COMMIT.value: "1",
            **tail,
        }
        try:
            reply = await nc.request(
                self.subject, payloads[-1], timeout=self.timeout, headers=headers
            )
        except nats.errors.NoRespondersError as exc:
            raise nats.js.errors.NoStreamResponseError() from exc
        resp = json.loads(reply.data)
        if "error" in resp:
            raise nats.js.errors.APIError.from_error(resp["error"])
        seq: int = resp["seq"]
        return seq


#: Bytes one replay fetch asks for at most.
_FETCH_BYTES = 16 * 1024 * 1024


class LogReader:
    """Replays a log range through a short-lived pull consumer (no acks, batched fetches)."""

    def __init__(self, log: EventLog, after_seq: int, *, batch: int) -> None:
        self._log = log
        self._after = after_seq
        self._batch = batch
        self._name = f"replay_{uuid.uuid4().hex}"
        self._sub: JetStreamContext.PullSubscription | None = None
        self._last = 0
        #: The sequence the next message must have: the log has no holes after its first
        #: message, so a jump means messages were lost on the way (a slow-consumer drop).
        self._next = after_seq + 1
        self._buffer: list[tuple[int, bytes]] = []
        self._pos = 0
        self._done = False
        self._fetch = batch
        self._hole: str | None = None

    def __aiter__(self) -> AsyncIterator[tuple[int, bytes]]:
        return self

    async def __anext__(self) -> tuple[int, bytes]:
        while self._pos >= len(self._buffer):
            if self._done or not await self._fill():
                await self.aclose()
                raise StopAsyncIteration
        item = self._buffer[self._pos]
        self._pos += 1
        return item

    async def _fill(self) -> bool:
        log_ = self._log
        what = f"replay of {log_.stream}"
        if self._hole is not None:
            await self.aclose()
            raise EngineUnavailableError(self._hole)
        if self._sub is None:
            with map_nats_errors(what):
                info = await log_.js.stream_info(log_.stream)
            self._last = info.state.last_seq
            # Nothing stored after ``after`` (possibly all purged): don't wait on a fetch.
            if self._last <= self._after or info.state.messages == 0:
                self._done = True
                return False
            self._next = max(self._after + 1, info.state.first_seq)
            # Keep what one fetch asks for well under what the server queues for a client
            # (64 MiB by default; past it the server drops the connection as a slow consumer).
            average = max(1, info.state.bytes // max(1, info.state.messages))
            self._fetch = max(1, min(self._batch, _FETCH_BYTES // average))
            config = ConsumerConfig(
                name=self._name,
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=self._after + 1,
                filter_subject=log_.subject,
                inactive_threshold=30.0,
                mem_storage=True,
                num_replicas=1,
            )
            with map_nats_errors(what):
                await log_.js.add_consumer(log_.stream, config)
                self._sub = await log_.js.pull_subscribe_bind(
                    consumer=self._name, stream=log_.stream
                )
        with map_nats_errors(what):
            msgs = await self._sub.fetch(self._fetch, timeout=log_.timeout)
        buffer: list[tuple[int, bytes]] = []
        for m in msgs:
            seq = m.metadata.sequence.stream
            if seq < self._next:
                continue  # delivered twice
            if seq != self._next:
                # Hand out what came before the hole first; the next fill raises.
                self._hole = (
                    f"{what}: expected log sequence {self._next}, got {seq} (messages were "
                    "lost on the way); read again from there"
                )
                break
            self._next = seq + 1
            if seq > self._last:
                self._done = True
                break
            buffer.append((seq, m.data))
            if seq == self._last:
                self._done = True
                break
        self._buffer = buffer
        self._pos = 0
        return bool(buffer) or not self._done

    async def aclose(self) -> None:
        """Delete the replay consumer (idempotent)."""
        self._done = True
        sub, self._sub = self._sub, None
        if sub is None:
            return
        try:
            await sub.unsubscribe()
            await self._log.js.delete_consumer(self._log.stream, self._name)
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            # It expires on its own after inactive_threshold.
            log.debug("closing replay consumer %s: %r", self._name, exc)

    async def __aenter__(self) -> LogReader:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def ensure_stream(engine: Engine, config: StreamConfig) -> None:
    """Create a stream or update it to ``config``; safe to call from many processes at once."""
    assert config.name is not None
    what = f"provisioning stream {config.name}"
    js = engine.js
    try:
        await js.add_stream(config)
        return
    except nats.js.errors.BadRequestError as exc:
        # 10058: exists with a different config. Fall through to update it.
        if exc.err_code != 10058:
            raise translate(exc, what) from exc
    except (TimeoutError, nats.errors.Error, OSError) as exc:
        raise translate(exc, what) from exc
    with map_nats_errors(what):
        await js.update_stream(config)
