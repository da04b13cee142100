"""The lifecycle-event stream: every event the master publishes, kept for replay by feeds.

The master publishes each committed event on core NATS (``<prefix>.events.<kind>``); this
LIMITS stream captures them so a feed (SSE, gRPC ``WatchEvents``) can resume from a stream
sequence. It is bounded by age and count: it is a window for late subscribers, not the record
(the log is).
"""

from __future__ import annotations

import logging

import nats.js.errors
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from ._errors import map_nats_errors, translate
from .connect import Engine
from .subjects import Subjects

__all__ = ["EVENTS_MAX_AGE", "EVENTS_MAX_MSGS", "ensure_events_stream"]

log = logging.getLogger("tierq.engine")

#: Retention of the events stream when it is created here.
EVENTS_MAX_AGE = 24 * 3600
EVENTS_MAX_MSGS = 1_000_000


async def ensure_events_stream(
    engine: Engine, subjects: Subjects, *, durable: bool = True, replicas: int = 1
) -> bool:
    """Create ``<PREFIX>_EVENTS`` unless it exists; True if this call created it.

    An existing stream is never changed: an operator may have set other limits on purpose.
    """
    name = f"{subjects.prefix.upper()}_EVENTS"
    js = engine.js
    try:
        await js.stream_info(name)
        return False
    except nats.js.errors.NotFoundError:
        pass
    except Exception as exc:  # translated below; stream_info raises several nats types
        raise translate(exc, f"inspecting stream {name}") from exc
    config = StreamConfig(
        name=name,
        subjects=[subjects.events_all],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE if durable else StorageType.MEMORY,
        discard=DiscardPolicy.OLD,
        max_age=EVENTS_MAX_AGE,
        max_msgs=EVENTS_MAX_MSGS,
        num_replicas=replicas,
        description="tierq lifecycle events (a window for feeds)",
    )
    try:
        with map_nats_errors(f"creating stream {name}"):
            await js.add_stream(config)
    except Exception as exc:
        # Another process created it first (10058: name in use): that is what we wanted.
        if getattr(exc.__cause__, "err_code", None) == 10058:
            return False
        raise
    log.info("created the %s stream for event feeds", name)
    return True
