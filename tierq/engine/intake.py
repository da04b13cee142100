"""The durable intake: a stream clients publish submissions to, which the master applies.

An awaited ``submit`` through the master is a request/reply plus the master's own log append:
three hops. Through the intake it is one JetStream publish, acknowledged once the entry is
stored (with the same storage and ``sync_interval`` as the log): the acknowledgement is the
durable one. The leader reads the intake in order with an ordered consumer, from the entry
after the last one its state applied, and appends what each entry caused to the log together
with the marker of how far it read (see ``core/intake.py``). It is purged up to what a
snapshot covers.

Each entry carries ``Nats-Msg-Id: <task id>``, so a client that publishes again after a lost
acknowledgement (within ``DUPLICATE_WINDOW``) gets the first entry's sequence back, not a
second entry.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from ..errors import BackpressureError, EngineUnavailableError
from ._errors import map_nats_errors, translate
from .codec import DEFAULT_MAX_BYTES
from .connect import Engine
from .log import ensure_stream
from .subjects import Subjects

__all__ = ["DUPLICATE_WINDOW", "INTAKE_MAX_MSGS", "IntakeFollower", "IntakeStream"]

log = logging.getLogger("tierq.engine.intake")

#: How long a repeated publish of the same task id is recognised as a duplicate, seconds.
DUPLICATE_WINDOW = 120.0
#: Entries the intake holds before it refuses more (a coarse bound: the master's admission
#: control refuses long before, and the stream is purged at every snapshot).
INTAKE_MAX_MSGS = 2_000_000
#: JetStream's "maximum messages exceeded" (a full stream with discard=new).
_STREAM_FULL = (10077, 10047)


class IntakeStream:
    """The stream ``<PREFIX>_INTAKE`` on the subject ``<prefix>.intake``."""

    def __init__(
        self,
        engine: Engine,
        subjects: Subjects | None = None,
        *,
        durable: bool = True,
        replicas: int = 1,
        max_msg_size: int = DEFAULT_MAX_BYTES,
        max_msgs: int = INTAKE_MAX_MSGS,
    ) -> None:
        self._engine = engine
        self.subjects = subjects or Subjects()
        self.stream = self.subjects.intake_stream
        self.subject = self.subjects.intake_subject
        self.durable = durable
        self.replicas = replicas
        self.max_msg_size = max_msg_size
        self.max_msgs = max_msgs

    def stream_config(self) -> StreamConfig:
        return StreamConfig(
            name=self.stream,
            subjects=[self.subject],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE if self.durable else StorageType.MEMORY,
            num_replicas=self.replicas,
            max_msg_size=self.max_msg_size,
            max_msgs=self.max_msgs,
            discard=DiscardPolicy.NEW,
            duplicate_window=DUPLICATE_WINDOW,
            allow_direct=True,
            description="tierq durable intake (submissions the master has not applied yet)",
        )

    async def provision(self) -> None:
        await ensure_stream(self._engine, self.stream_config())

    async def publish(self, payload: bytes, msg_id: str, *, timeout: float) -> int:
        """Store one entry; returns its sequence once it is durable.

        Raises:
            BackpressureError: the intake is full.
            EngineUnavailableError: no acknowledgement (NATS away, no intake stream, timeout):
                the outcome is unknown, and publishing the same ``msg_id`` again is safe.
        """
        what = f"publish to {self.stream}"
        try:
            ack = await self._engine.js.publish(
                self.subject,
                payload,
                timeout=timeout,
                stream=self.stream,
                headers={"Nats-Msg-Id": msg_id},
            )
        except nats.js.errors.APIError as exc:
            if exc.err_code in _STREAM_FULL:
                raise BackpressureError(
                    f"the intake holds {self.max_msgs} entries the master has not applied yet",
                    retry_after=1.0,
                ) from exc
            raise translate(exc, what) from exc
        except nats.errors.NoRespondersError as exc:
            raise EngineUnavailableError(
                f"{what}: no intake stream answers; start a master first (it creates it)"
            ) from exc
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            raise translate(exc, what) from exc
        return ack.seq

    async def last_seq(self) -> int:
        """The last sequence stored (0 when nothing was ever published)."""
        with map_nats_errors(f"stream info of {self.stream}"):
            info = await self._engine.js.stream_info(self.stream)
        return info.state.last_seq

    async def purge(self, upto_seq: int) -> None:
        """Drop entries with sequence <= ``upto_seq`` (the log holds what they caused)."""
        if upto_seq <= 0:
            return
        with map_nats_errors(f"purge of {self.stream}"):
            await self._engine.js.purge_stream(self.stream, seq=upto_seq + 1)

    async def follow(
        self, after_seq: int, on_entry: Callable[[int, bytes], Awaitable[None] | None]
    ) -> IntakeFollower:
        """Deliver every entry after ``after_seq``, in order, then each new one as it comes.

        An ordered consumer: no acks, and the client library re-creates it from the last
        sequence it delivered when it sees a gap, so ``on_entry`` sees each sequence once, in
        order (a caller still skips what it applied, as the core does).
        """
        follower = IntakeFollower(on_entry)
        config = ConsumerConfig(opt_start_seq=after_seq + 1)
        with map_nats_errors(f"following {self.stream}"):
            follower.sub = await self._engine.js.subscribe(
                self.subject,
                stream=self.stream,
                cb=follower.deliver,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                config=config,
                idle_heartbeat=2.0,
            )
        return follower


class IntakeFollower:
    """A running :meth:`IntakeStream.follow`; :meth:`stop` ends it."""

    def __init__(self, on_entry: Callable[[int, bytes], Awaitable[None] | None]) -> None:
        self._on_entry = on_entry
        self.sub: NatsSubscription | None = None

    async def deliver(self, msg: Msg) -> None:
        result = self._on_entry(msg.metadata.sequence.stream, msg.data)
        if result is not None:
            await result

    async def stop(self) -> None:
        sub, self.sub = self.sub, None
        if sub is None:
            return
        try:
            await sub.unsubscribe()
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            # The ephemeral consumer expires on its own once nobody listens.
            log.debug("stopping the intake consumer: %r", exc)
