"""Scheduler snapshots on a JetStream Object Store, newest N kept."""

from __future__ import annotations

import asyncio
import io
import logging
import re

import nats.errors
import nats.js.errors
from nats.js.api import ObjectMeta, ObjectMetaOptions, ObjectStoreConfig, StorageType
from nats.js.object_store import ObjectStore

from ._errors import map_nats_errors, translate
from .connect import Engine
from .subjects import Subjects

__all__ = ["SnapshotStore"]

log = logging.getLogger("tierq.engine.snapshot")

_NAME = re.compile(r"snapshot-(\d{20})")
_NATS_ERRORS = (nats.errors.Error, OSError, asyncio.TimeoutError)


class SnapshotStore:
    """Snapshots of the scheduler state, each named by the log sequence it covers.

    Objects are chunked by the Object Store (``chunk_size`` bytes per message) and checked
    against their SHA-256 on read, so a 100 MB snapshot is fine; only the newest ``keep``
    are kept.
    """

    def __init__(
        self,
        engine: Engine,
        subjects: Subjects | None = None,
        *,
        keep: int = 3,
        chunk_size: int = 1024 * 1024,
        durable: bool = True,
        replicas: int = 1,
    ) -> None:
        if keep < 1:
            raise ValueError("keep at least one snapshot")
        self._engine = engine
        self.subjects = subjects or Subjects()
        self.keep = keep
        self.chunk_size = chunk_size
        self.durable = durable
        self.replicas = replicas
        self._obs: ObjectStore | None = None

    @property
    def bucket(self) -> str:
        return self.subjects.snapshot_bucket

    def store_config(self) -> ObjectStoreConfig:
        return ObjectStoreConfig(
            bucket=self.bucket,
            storage=StorageType.FILE if self.durable else StorageType.MEMORY,
            replicas=self.replicas,
            description="tierq scheduler snapshots",
        )

    async def open(self) -> SnapshotStore:
        """Create the object store or bind to it (idempotent)."""
        if self._obs is not None:
            return self
        what = f"provisioning object store {self.bucket}"
        js = self._engine.js
        try:
            self._obs = await js.create_object_store(self.bucket, config=self.store_config())
            return self
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != 10058:
                raise translate(exc, what) from exc
        except _NATS_ERRORS as exc:
            raise translate(exc, what) from exc
        with map_nats_errors(what):
            self._obs = await js.object_store(self.bucket)
        return self

    async def _store(self) -> ObjectStore:
        await self.open()
        assert self._obs is not None
        return self._obs

    async def put(self, seq: int, data: bytes) -> None:
        """Store the snapshot covering the log up to ``seq``, then drop the oldest."""
        obs = await self._store()
        meta = ObjectMeta(
            name=_name(seq), options=ObjectMetaOptions(max_chunk_size=self.chunk_size)
        )
        with map_nats_errors(f"store snapshot {seq} in {self.bucket}"):
            await obs.put(_name(seq), data, meta=meta)
        await self._prune()

    async def sequences(self) -> list[int]:
        """Sequences of the stored snapshots, oldest first."""
        obs = await self._store()
        try:
            infos = await obs.list(ignore_deletes=True)
        except nats.js.errors.NotFoundError:
            return []
        except _NATS_ERRORS as exc:
            raise translate(exc, f"list {self.bucket}") from exc
        seqs = []
        for info in infos:
            m = _NAME.fullmatch(info.name or "")
            if m and not info.deleted:
                seqs.append(int(m.group(1)))
        return sorted(seqs)

    async def latest(self) -> tuple[int, bytes] | None:
        """The newest snapshot as ``(seq, data)``, or None if there is none."""
        seqs = await self.sequences()
        if not seqs:
            return None
        obs = await self._store()
        seq = seqs[-1]
        # Write into a buffer: nats-py concatenates chunks into bytes otherwise, which is
        # quadratic in the object size.
        buffer = io.BytesIO()
        with map_nats_errors(f"read snapshot {seq} from {self.bucket}"):
            await obs.get(_name(seq), writeinto=buffer)
        return seq, buffer.getvalue()

    async def _prune(self) -> None:
        seqs = await self.sequences()
        obs = await self._store()
        for seq in seqs[: -self.keep]:
            try:
                await obs.delete(_name(seq))
            except _NATS_ERRORS as exc:
                log.warning("could not delete old snapshot %d: %r", seq, exc)


def _name(seq: int) -> str:
    return f"snapshot-{seq:020d}"
