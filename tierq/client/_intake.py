"""The awaited ``submit`` through the durable intake: one JetStream publish, durable on return.

The client makes the task id (``core.ids.client_id``: its clock's millisecond, a random token
of this connection and a counter), publishes ``IntakeEntry(id, spec)`` on ``<prefix>.intake``
with ``Nats-Msg-Id: <id>``, and returns once the stream has stored it: that acknowledgement is
as durable as the master's log append (same storage, same ``sync_interval``). The master
applies the entry moments later; a query for the id before then waits for it (read your
writes).

Backpressure: the leader publishes its admission state on ``<prefix>.admission`` whenever it
changes, and this client refuses with BackpressureError before publishing while that state
says the master would. A submission that slips through before the news arrives is refused by
the master when it applies it: the task ends DEAD with the reason, which ``result()`` raises.

The warning about a task type no live worker serves (the master's submit reply carries it) is
computed here from the master's list of regions, asked again after ``SERVED_TTL`` seconds for
a placement that was served and after ``UNSERVED_TTL`` for one that was not.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import secrets
import time

import msgspec

from ..core.admission import check_admission
from ..core.ids import client_id
from ..core.model import RegionInfo, TaskSpec
from ..core.waiting import unserved_message
from ..engine import Engine, IntakeStream, Message, Subjects, Subscription
from ..errors import EngineUnavailableError, NoRespondersError, PayloadTooLargeError, TierqError
from ..protocol import AdmissionState, IntakeEntry, QueryKind, QueryRequest, RegionsReply
from ..rpc import MasterClient

__all__ = ["IntakeSubmitter"]

#: How long a placement found served is trusted before the regions are asked again, seconds.
SERVED_TTL = 30.0
#: How long a placement found unserved is reported so without asking again, seconds.
UNSERVED_TTL = 1.0
#: Pause before publishing an entry again after an unknown outcome.
_RESEND_PAUSE = 0.05
#: Longest wait for one publish's acknowledgement before publishing the entry again. An
#: acknowledgement is lost, never late, when the server the client is connected to dies
#: with the publish in flight: waiting the whole request timeout for it stalled producers
#: for that long in the node-loss test. Publishing again is safe (same ``Nats-Msg-Id``).
ATTEMPT_TIMEOUT = 2.0

_Placement = tuple[str, str | None, tuple[str, ...]]
_admission = msgspec.msgpack.Decoder(AdmissionState).decode


class IntakeSubmitter:
    """Submits one task at a time through the intake, on one connection."""

    def __init__(
        self, engine: Engine, subjects: Subjects, master: MasterClient, timeout: float
    ) -> None:
        self._engine = engine
        self._stream = IntakeStream(engine, subjects)
        self._master = master
        self._timeout = timeout
        self._token = secrets.token_hex(6)
        self._count = 0
        self._encode = msgspec.msgpack.Encoder().encode
        self._served: dict[_Placement, tuple[float, str | None]] = {}
        self._subjects = subjects
        #: The leader's admission state as last published (None: not heard, assume open).
        self.admission: AdmissionState | None = None
        self._listening: Subscription | None = None
        #: (intake sequence, queue) of this client's entries after the last state it heard.
        self._unapplied: collections.deque[tuple[int, str]] = collections.deque()
        #: The same entries counted by queue (kept as they come and go: no walk per submit).
        self._unapplied_by_queue: collections.Counter[str] = collections.Counter()

    async def submit(self, spec: TaskSpec) -> tuple[str, list[str]]:
        """Publish one task; returns its id, once durable, and the warnings about it.

        Raises:
            BackpressureError: the intake is full.
            PayloadTooLargeError: the entry is larger than the server takes.
            EngineUnavailableError: no acknowledgement within the request timeout; the task
                may or may not be stored (the same id is never stored twice).
        """
        if self._listening is None:
            await self._listen()
        self._check_admission(spec)
        self._count += 1
        task_id = client_id(time.time(), f"{self._token}{self._count:x}")
        payload = self._encode(IntakeEntry(id=task_id, spec=spec))
        limit = self._engine.max_payload - 512
        if len(payload) > limit:
            raise PayloadTooLargeError(
                f"task {spec.name!r} is {len(payload)} bytes encoded; the server takes at most "
                f"{limit} (pass large data by reference)",
                field="args",
            )
        seq = await self._publish(payload, task_id)
        self._unapplied.append((seq, spec.queue))
        self._unapplied_by_queue[spec.queue] += 1
        return task_id, await self._warnings(spec)

    def _check_admission(self, spec: TaskSpec) -> None:
        """Refuse as the master would, before anything is stored: its last published counts
        plus this client's own entries it had not applied then."""
        state = self.admission
        if state is None:
            return
        own, by_queue = self._unapplied, self._unapplied_by_queue
        while own and own[0][0] <= state.intake_seq:
            by_queue[own.popleft()[1]] -= 1
        waiting = state.waiting + len(own)
        # Counts of the queues above their soft watermark (the others pass), plus our own.
        queues = {q: state.queues.get(q, 0) + n for q, n in by_queue.items() if n}
        for queue, n in state.queues.items():
            queues.setdefault(queue, n)
        check_admission(state.settings, waiting, queues, {spec.queue: (1, spec.priority)})

    async def _listen(self) -> None:
        """Hear the leader's admission changes; ask for the current state once."""
        self._listening = await self._engine.subscribe(
            self._subjects.admission, cb=self._on_admission
        )
        with contextlib.suppress(TierqError):
            query = QueryRequest(kind=QueryKind.ADMISSION)
            state = await self._master.call("query", query, AdmissionState, timeout=1.0)
            if self.admission is None:
                self.admission = state

    async def _on_admission(self, msg: Message) -> None:
        with contextlib.suppress(msgspec.ValidationError, msgspec.DecodeError):
            self.admission = _admission(msg.data)

    async def close(self) -> None:
        sub, self._listening = self._listening, None
        if sub is not None:
            with contextlib.suppress(TierqError):
                await sub.unsubscribe()

    async def _publish(self, payload: bytes, task_id: str) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while True:
            left = min(deadline - loop.time(), ATTEMPT_TIMEOUT)
            try:
                return await self._stream.publish(payload, task_id, timeout=max(0.05, left))
            except NoRespondersError:
                raise
            except EngineUnavailableError as exc:
                # Outcome unknown: publishing the same id again is a duplicate the stream
                # recognises, so it is safe until the deadline.
                if loop.time() + _RESEND_PAUSE >= deadline:
                    raise EngineUnavailableError(
                        f"{exc.message}; task {task_id} may or may not have been accepted"
                    ) from exc
                await asyncio.sleep(_RESEND_PAUSE)

    async def _warnings(self, spec: TaskSpec) -> list[str]:
        key = (spec.name, spec.region, spec.labels)
        now = time.monotonic()
        cached = self._served.get(key)
        if cached is not None:
            checked, message = cached
            if now - checked < (SERVED_TTL if message is None else UNSERVED_TTL):
                return [] if message is None else [message]
        try:
            reply = await self._master.call(
                "query", QueryRequest(kind=QueryKind.REGIONS), RegionsReply, timeout=1.0
            )
        except TierqError:
            return []  # the task is durable; the warning is a courtesy the master may add
        regions = [
            RegionInfo(name=r.name, instance=r.instance, labels=r.labels, task_types=r.task_types)
            for r in reply.regions
        ]
        message = unserved_message(regions, spec)
        self._served[key] = (now, message)
        return [] if message is None else [message]
