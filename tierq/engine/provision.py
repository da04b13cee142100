"""Create every stream and bucket tierq needs, idempotently."""

from __future__ import annotations

import logging

from .codec import DEFAULT_MAX_BYTES
from .connect import Engine
from .events import ensure_events_stream
from .intake import IntakeStream
from .kv import LeaderLease, SettingsStore
from .log import EventLog
from .snapshot import SnapshotStore
from .subjects import Subjects

__all__ = ["CLUSTER_REPLICAS", "provision", "replicas_for"]

log = logging.getLogger("tierq.engine")

#: Replicas of every stream and bucket when the server is part of a cluster.
CLUSTER_REPLICAS = 3


def replicas_for(configured: int | None, cluster: str | None) -> int:
    """The replica count to provision with: ``configured``, else 3 in a cluster, else 1.

    One replica in a cluster keeps every acknowledged write on a single node: its loss loses
    them. That is allowed when asked for, and said loudly.
    """
    if configured is None:
        return CLUSTER_REPLICAS if cluster is not None else 1
    if cluster is not None and configured < CLUSTER_REPLICAS:
        log.warning(
            "NATS cluster %r, and tierq's streams get %d replica(s): losing the node that "
            "holds one loses what it acknowledged. Use --replicas 3 for the durable profile.",
            cluster,
            configured,
        )
    return configured


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
    await ensure_events_stream(engine, subjects, durable=durable, replicas=replicas)
