"""Create every stream and bucket tierq needs, idempotently."""

from __future__ import annotations

from .codec import DEFAULT_MAX_BYTES
from .connect import Engine
from .events import ensure_events_stream
from .intake import IntakeStream
from .kv import LeaderLease, SettingsStore
from .log import EventLog
from .snapshot import SnapshotStore
from .subjects import Subjects

__all__ = ["provision"]


async def provision(
    engine: Engine,
    subjects: Subjects | None = None,
    *,
    durable: bool = True,
    replicas: int = 1,
    lease_ttl: float = 10.0,
    max_msg_size: int = DEFAULT_MAX_BYTES,
) -> None:
    """Create the log, intake and events streams, the leader and settings buckets and the
    snapshot store.

    Safe to call again and from several processes at once: an existing stream is updated to
    this config, existing buckets are used as they are.

    Args:
        durable: file storage; False keeps everything in memory (tests, benchmarks). Whether
            an acknowledged write survives power loss is the *server's* ``sync_interval``
            (see :class:`EmbeddedNats` ``sync_always``) and ``replicas``.
    """
    subjects = subjects or Subjects()
    await EventLog(
        engine, subjects, max_msg_size=max_msg_size, durable=durable, replicas=replicas
    ).provision()
    await IntakeStream(
        engine, subjects, durable=durable, replicas=replicas, max_msg_size=max_msg_size
    ).provision()
    await LeaderLease(engine, subjects, ttl=lease_ttl, durable=durable, replicas=replicas).open()
    await SettingsStore(engine, subjects, durable=durable, replicas=replicas).open()
    await SnapshotStore(engine, subjects, durable=durable, replicas=replicas).open()
    await ensure_events_stream(engine, subjects, durable=durable)
