"""The live lifecycle feed: events from the master, filtered, resumable by stream sequence.

The master publishes every committed event as JSON on ``<prefix>.events.<kind>``, and the
``<PREFIX>_EVENTS`` JetStream stream keeps them. Each watcher gets its own ephemeral push
consumer on that stream (created through the JetStream JSON API, acknowledgement-free,
filtered by kind on the server), so a watcher can start after any sequence it saw before
(SSE ``Last-Event-ID``, gRPC ``after_sequence``) and every event carries its sequence.

This is the ordered-consumer recipe of the NATS clients: the consumer sequence in each
delivery's reply subject must grow by one; a hole (the client fell behind and NATS dropped
messages) tears the consumer down and starts a new one after the last sequence delivered, so
a watcher never silently misses an event. When the stream does not exist (an older master),
the feed falls back to the plain subjects: live only, and without sequences.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import NamedTuple

import msgspec

from ..core.events import EVENT_KINDS
from ..engine import Engine, Message, Subjects, Subscription
from ..errors import EngineUnavailableError, InvalidRequestError, TierqError
from ..protocol import AUTOSCALE_DECISION_KIND

__all__ = ["MAX_AFTER", "MAX_LAST", "EventFeed", "EventFilter", "FeedEvent", "Watch"]

log = logging.getLogger("tierq.api.feed")

#: Events buffered per watcher before the consumer is torn down and restarted behind it.
_QUEUE = 1024
#: Seconds an abandoned consumer lives on the server (a crashed API process leaks none).
_INACTIVE_NS = 30 * 1_000_000_000
#: The server says "still here, last sent N" this often, so a lost tail is noticed too.
_HEARTBEAT_NS = 5 * 1_000_000_000
_STREAM_NOT_FOUND = 10059


class FeedEvent(NamedTuple):
    #: Stream sequence (0 when the feed runs without the stream).
    sequence: int
    kind: str
    #: The event as the master published it (JSON).
    data: bytes


class _Probe(msgspec.Struct):
    """The fields filters look at; everything else in an event is skipped while decoding."""

    kind: str = ""
    id: str | None = None
    ids: list[str] = []
    workflow_id: str | None = None
    region: str | None = None
    name: str | None = None
    info: dict[str, object] | None = None


_probe = msgspec.json.Decoder(_Probe)
_REGION_KINDS = frozenset({"region_registered", "region_heartbeat", "region_expired"})
#: What a watcher may ask for: the master's events and the autoscalers' decisions.
FEED_KINDS = (*EVENT_KINDS, AUTOSCALE_DECISION_KIND)


class EventFilter:
    """Which events a watcher wants. Task and workflow filters match the events about them."""

    def __init__(
        self,
        kinds: list[str] | tuple[str, ...] = (),
        task_id: str | None = None,
        workflow_id: str | None = None,
        region: str | None = None,
    ) -> None:
        for i, kind in enumerate(kinds):
            if kind not in FEED_KINDS:
                raise InvalidRequestError(
                    f"unknown event kind {kind[:64]!r}; expected one of {', '.join(FEED_KINDS)}",
                    field=f"kinds[{i}]",
                )
        self.kinds = tuple(dict.fromkeys(kinds))
        self.task_id = task_id
        self.workflow_id = workflow_id
        self.region = region
        #: Tasks of the watched workflow, learned from its events (and seeded by the caller).
        self.workflow_tasks: set[str] = set()

    @property
    def needs_body(self) -> bool:
        return bool(self.task_id or self.workflow_id or self.region)

    def matches(self, data: bytes) -> bool:
        if not self.needs_body:
            return True
        try:
            ev = _probe.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False
        if self.workflow_id is not None:
            if ev.kind == "task_submitted" and ev.workflow_id == self.workflow_id and ev.id:
                self.workflow_tasks.add(ev.id)
            if not self._in_workflow(ev):
                return False
        if self.task_id is not None and not (
            ev.kind.startswith("task") and (ev.id == self.task_id or self.task_id in ev.ids)
        ):
            return False
        return self.region is None or self._in_region(ev)

    def _in_workflow(self, ev: _Probe) -> bool:
        if ev.kind in ("workflow_submitted", "workflow_finished"):
            return ev.id == self.workflow_id
        if ev.kind == "tasks_evicted":
            return self.workflow_id in ev.ids or bool(self.workflow_tasks.intersection(ev.ids))
        if ev.kind == "tasks_assigned":
            # One event per lease: about the workflow when it hands out any of its tasks.
            return bool(self.workflow_tasks.intersection(ev.ids))
        return ev.id is not None and ev.id in self.workflow_tasks

    def _in_region(self, ev: _Probe) -> bool:
        if ev.region == self.region:
            return True
        if ev.kind in _REGION_KINDS:
            return ev.name == self.region or (
                ev.info is not None and ev.info.get("name") == self.region
            )
        return False


class Watch:
    """One watcher's event source: :meth:`get` events, :meth:`aclose` when done."""

    def __init__(
        self,
        feed: EventFeed,
        filt: EventFilter,
        after: int | None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._feed = feed
        self._on_close = on_close
        self._filter = filt
        self._after = after
        self._last = after if after is not None else 0
        # Unbounded type, bounded by _on_message: a full queue restarts the consumer instead.
        self._queue: asyncio.Queue[FeedEvent | None] = asyncio.Queue()
        self._sub: Subscription | None = None
        self._consumer: str | None = None
        self._expected = 1
        self._broken = False
        self._closed = False
        self._failed = False
        self._restarting: asyncio.Task[None] | None = None
        #: False when running on the plain subjects (no stream: no sequences, no resume).
        self.resumable = True

    # -- setup ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe; raises EngineUnavailableError if NATS does not answer."""
        await self._open(self._after)

    async def _open(self, after: int | None) -> None:
        engine, subjects = self._feed.engine, self._feed.subjects
        kinds = self._filter.kinds
        filters = [subjects.event(k) for k in kinds] if kinds else [subjects.events_all]
        inbox = engine.new_inbox()
        self._expected = 1
        self._broken = False
        self._sub = await engine.subscribe(inbox, cb=self._on_message)
        config: dict[str, object] = {
            "deliver_subject": inbox,
            "ack_policy": "none",
            "replay_policy": "instant",
            "inactive_threshold": _INACTIVE_NS,
            "idle_heartbeat": _HEARTBEAT_NS,
            "mem_storage": True,
            "num_replicas": 1,
        }
        if len(filters) == 1:
            config["filter_subject"] = filters[0]
        else:
            config["filter_subjects"] = filters
        if after is None:
            config["deliver_policy"] = "new"
        else:
            config["deliver_policy"] = "by_start_sequence"
            config["opt_start_seq"] = after + 1
        stream = self._feed.stream
        body = json.dumps({"stream_name": stream, "config": config}).encode()
        try:
            raw = await engine.request(f"$JS.API.CONSUMER.CREATE.{stream}", body, timeout=5.0)
            reply = json.loads(raw)
        except BaseException:
            await self._drop_subscription()
            raise
        error = reply.get("error")
        if error is None:
            self._consumer = reply.get("name")
            return
        await self._drop_subscription()
        if error.get("err_code") == _STREAM_NOT_FOUND:
            log.warning("no %s stream: the event feed runs live only, without sequences", stream)
            self.resumable = False
            self._sub = await engine.subscribe(subjects.events_all, cb=self._on_plain)
            return
        raise EngineUnavailableError(
            f"cannot watch {stream}: {error.get('code')}/{error.get('err_code')} "
            f"{error.get('description')}"
        )

    # -- delivery (subscription callbacks) --------------------------------------------------

    async def _on_message(self, msg: Message) -> None:
        if self._broken or self._closed:
            return
        if not msg.reply:
            headers = msg.headers or {}
            if headers.get("Status") == "100":
                # Idle heartbeat: the server says which consumer sequence it sent last.
                last = headers.get("Nats-Last-Consumer")
                if last is not None and last.isdigit() and int(last) >= self._expected:
                    self._break()
            return
        meta = _ack_metadata(msg.reply)
        if meta is None:
            return
        stream_seq, consumer_seq = meta
        if consumer_seq != self._expected or self._queue.qsize() >= _QUEUE:
            # A hole (NATS dropped messages for a slow client) or a watcher far behind:
            # restart after the last event handed out rather than skip or buffer more.
            self._break()
            return
        self._expected += 1
        self._queue.put_nowait(FeedEvent(stream_seq, msg.subject.rsplit(".", 1)[-1], msg.data))

    async def _on_plain(self, msg: Message) -> None:
        if self._closed or self._queue.qsize() >= _QUEUE:
            return
        kind = msg.subject.rsplit(".", 1)[-1]
        if not self._filter.kinds or kind in self._filter.kinds:
            self._queue.put_nowait(FeedEvent(0, kind, msg.data))

    def _break(self) -> None:
        self._broken = True
        self._queue.put_nowait(None)

    # -- reading ----------------------------------------------------------------------------

    async def get(self) -> FeedEvent:
        """The next matching event (waits for it). Safe to cancel."""
        while True:
            if self._closed or self._failed:
                raise EngineUnavailableError("the event watch is closed")
            if self._broken and self._queue.empty():
                if self._restarting is None or self._restarting.done():
                    self._restarting = asyncio.get_running_loop().create_task(self._restart())
                # Shielded: a caller giving up (a keep-alive timeout) must not cut a restart
                # in half and leave a subscription without a consumer.
                await asyncio.shield(self._restarting)
            item = await self._queue.get()
            if item is None:
                continue
            if item.sequence:
                if item.sequence <= self._last:
                    continue
                self._last = item.sequence
            if self._filter.matches(item.data):
                return item

    async def next(self, timeout: float) -> FeedEvent | None:
        """The next matching event, or None if none comes within ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                return await self.get()
        except TimeoutError:
            return None

    def __aiter__(self) -> AsyncIterator[FeedEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[FeedEvent]:
        while not self._closed:
            yield await self.get()

    async def _restart(self) -> None:
        log.info("event watcher fell behind after sequence %d; restarting", self._last)
        await self._teardown()
        self._queue = asyncio.Queue()
        try:
            await self._open(self._last)
        except BaseException:
            # The watcher ends here; a client resumes with the last sequence it got.
            self._failed = True
            raise

    # -- teardown ---------------------------------------------------------------------------

    async def _drop_subscription(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            await sub.unsubscribe()

    async def _teardown(self) -> None:
        await self._drop_subscription()
        if self._consumer is not None:
            name, self._consumer = self._consumer, None
            # Best effort: the inactive threshold removes it anyway.
            with contextlib.suppress(TierqError):
                await self._feed.engine.request(
                    f"$JS.API.CONSUMER.DELETE.{self._feed.stream}.{name}", b"", timeout=2.0
                )

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._on_close is not None:
            self._on_close()
        self._queue.put_nowait(None)
        if self._restarting is not None and not self._restarting.done():
            self._restarting.cancel()
            with contextlib.suppress(asyncio.CancelledError, TierqError):
                await self._restarting
        await self._teardown()


#: Largest ``after`` a watch accepts: JetStream sequences are 64-bit and the consumer starts
#: at ``after + 1`` (a larger number made the server refuse the consumer: a 503 with its text).
MAX_AFTER = 2**63 - 2
#: Most events a watch replays from the end of the stream (``last``) before going live.
MAX_LAST = 10_000


class EventFeed:
    """Opens :class:`Watch` es on the event stream of one tierq installation."""

    def __init__(self, engine: Engine, subjects: Subjects, stream: str | None = None) -> None:
        self.engine = engine
        self.subjects = subjects
        self.stream = stream or f"{subjects.prefix.upper()}_EVENTS"

    async def watch(
        self,
        filt: EventFilter,
        after: int | None = None,
        on_close: Callable[[], None] | None = None,
        *,
        last: int | None = None,
    ) -> Watch:
        """A started watch: events after stream sequence ``after`` (None: from now on).

        ``last`` (when ``after`` is None) replays the stream's last ``last`` events first,
        the ones the filter matches among them, then goes on live without a gap.
        ``on_close`` runs once when the watch is closed (the API's watcher gauge).
        """
        if after is not None and not 0 <= after <= MAX_AFTER:
            raise InvalidRequestError(
                f"the event sequence must be between 0 and {MAX_AFTER}", field="after"
            )
        if last is not None and not 1 <= last <= MAX_LAST:
            raise InvalidRequestError(f"last must be between 1 and {MAX_LAST}", field="last")
        if after is None and last is not None:
            end = await self.last_sequence()
            after = None if end is None else max(0, end - last)
        watch = Watch(self, filt, after, on_close)
        await watch.start()
        return watch

    async def last_sequence(self) -> int | None:
        """The sequence of the stream's last event (0 when empty); None without the stream."""
        raw = await self.engine.request(f"$JS.API.STREAM.INFO.{self.stream}", b"", timeout=5.0)
        info = json.loads(raw)
        if "error" in info:
            if info["error"].get("err_code") == _STREAM_NOT_FOUND:
                return None
            error = info["error"]
            raise EngineUnavailableError(
                f"cannot read {self.stream}: {error.get('code')}/{error.get('err_code')} "
                f"{error.get('description')}"
            )
        last: int = info["state"]["last_seq"]
        return last


def _ack_metadata(reply: str) -> tuple[int, int] | None:
    """(stream sequence, consumer sequence) from a JetStream delivery's reply subject.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>``, or the v2 form
    with ``<domain>.<account hash>`` after ``ACK`` and a random token at the end.
    """
    tokens = reply.split(".")
    try:
        if len(tokens) == 9:
            return int(tokens[5]), int(tokens[6])
        if len(tokens) >= 12:
            return int(tokens[7]), int(tokens[8])
    except ValueError:
        return None
    return None
