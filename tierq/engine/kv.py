"""Leader lease and settings on JetStream KV buckets."""

from __future__ import annotations

import asyncio
import logging

import nats.errors
import nats.js.errors
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from ..errors import EngineUnavailableError, FencedError
from ._errors import map_nats_errors, translate
from .connect import Engine
from .subjects import Subjects

__all__ = ["LeaderLease", "SettingsStore", "ensure_bucket"]

log = logging.getLogger("tierq.engine.kv")

_NATS_ERRORS = (nats.errors.Error, OSError, asyncio.TimeoutError)


async def ensure_bucket(engine: Engine, config: KeyValueConfig) -> KeyValue:
    """Create a KV bucket, or bind to it if it exists (then its own config wins)."""
    assert config.bucket is not None
    what = f"provisioning bucket {config.bucket}"
    try:
        return await engine.js.create_key_value(config)
    except nats.js.errors.BadRequestError as exc:
        # 10058: it exists with another config (another process created it differently).
        if exc.err_code != 10058:
            raise translate(exc, what) from exc
    except _NATS_ERRORS as exc:
        raise translate(exc, what) from exc
    with map_nats_errors(what):
        return await engine.js.key_value(config.bucket)


class LeaderLease:
    """Leader election: whoever creates the key holds the lease until it stops renewing.

    The bucket's ``ttl`` is the lease duration: every renewal rewrites the key, and a key
    not rewritten within ``ttl`` expires, so a standby's ``create`` succeeds. Holders renew
    with the revision they last wrote (compare-and-set), so a holder that lost the key can
    never overwrite the new one. Renew well within ``ttl`` (every ``ttl/3`` is usual).

    Leadership alone does not stop a deposed master's writes racing in: the log's
    expected-sequence fencing does (see :class:`EventLog`).
    """

    def __init__(
        self,
        engine: Engine,
        subjects: Subjects | None = None,
        *,
        ttl: float = 10.0,
        key: str = "leader",
        durable: bool = True,
        replicas: int = 1,
    ) -> None:
        self._engine = engine
        self.subjects = subjects or Subjects()
        self.ttl = ttl
        self.key = key
        self.durable = durable
        self.replicas = replicas
        self._kv: KeyValue | None = None
        self._holder: str | None = None
        self._revision: int | None = None

    def bucket_config(self) -> KeyValueConfig:
        return KeyValueConfig(
            bucket=self.subjects.leader_bucket,
            history=1,
            ttl=self.ttl,
            storage=StorageType.FILE if self.durable else StorageType.MEMORY,
            replicas=self.replicas,
            direct=True,
            description="tierq leader lease",
        )

    async def open(self) -> LeaderLease:
        if self._kv is None:
            self._kv = await ensure_bucket(self._engine, self.bucket_config())
        return self

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            await self.open()
        assert self._kv is not None
        return self._kv

    @property
    def holder_id(self) -> str | None:
        """Who this object holds the lease for (None when not holding it)."""
        return self._holder

    @property
    def held(self) -> bool:
        return self._holder is not None

    async def try_acquire(self, holder_id: str) -> bool:
        """Take the lease if nobody holds it. True when this call made us the holder."""
        kv = await self._bucket()
        what = f"acquire {self.subjects.leader_bucket}/{self.key}"
        try:
            rev = await kv.create(self.key, holder_id.encode())
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        except _NATS_ERRORS as exc:
            raise translate(exc, what) from exc
        self._holder, self._revision = holder_id, rev
        log.info("leader lease acquired by %s (rev %d)", holder_id, rev)
        return True

    async def wait_acquire(self, holder_id: str, *, poll_interval: float | None = None) -> None:
        """Wait until this caller holds the lease (a standby's loop)."""
        interval = poll_interval if poll_interval is not None else min(1.0, self.ttl / 4)
        # An expired key sends no notification (no delete marker), so poll. NATS being away
        # for a while is what standing by is for: keep trying, never give up.
        while True:
            try:
                if await self.try_acquire(holder_id):
                    return
            except EngineUnavailableError as exc:
                log.warning("leader lease: NATS unavailable, retrying: %s", exc)
            await asyncio.sleep(interval)

    async def server_ttl(self) -> float:
        """The lease duration the server enforces: the bucket's ``max_age``.

        A bucket created earlier with another ``ttl`` keeps it (buckets are used as they are),
        so a holder must judge its lease by this figure, not by the one it was configured with.
        """
        kv = await self._bucket()
        with map_nats_errors(f"status of {self.subjects.leader_bucket}"):
            status = await kv.status()
        return float(status.ttl) if status.ttl else self.ttl

    def forget(self) -> None:
        """Stop treating the lease as ours without telling the server (its ``ttl`` ends it)."""
        self._holder = self._revision = None

    async def renew(self) -> None:
        """Extend the lease.

        Raises:
            FencedError: the lease expired or was taken over; stop acting as leader.
            EngineUnavailableError: NATS did not answer; the lease may still be ours until
                ``ttl`` runs out, so retry soon, and step down if it does run out.
        """
        if self._holder is None or self._revision is None:
            raise FencedError("not holding the leader lease")
        kv = await self._bucket()
        what = f"renew {self.subjects.leader_bucket}/{self.key}"
        try:
            self._revision = await kv.update(self.key, self._holder.encode(), last=self._revision)
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.NotFoundError) as exc:
            holder = self._holder
            self._holder = self._revision = None
            raise FencedError(f"leader lease of {holder} lost: expired or taken over") from exc
        except _NATS_ERRORS as exc:
            raise translate(exc, what) from exc

    async def release(self) -> None:
        """Give the lease up so a standby need not wait for ``ttl`` (no-op if not held)."""
        if self._holder is None or self._revision is None:
            return
        kv = await self._bucket()
        rev = self._revision
        self._holder = self._revision = None
        try:
            await kv.delete(self.key, last=rev)
        except nats.js.errors.KeyWrongLastSequenceError:
            pass  # Somebody else holds it already; nothing of ours to release.
        except _NATS_ERRORS as exc:
            raise translate(exc, f"release {self.subjects.leader_bucket}/{self.key}") from exc

    async def current_holder(self) -> str | None:
        """Who holds the lease now, as far as the bucket says (None: nobody)."""
        kv = await self._bucket()
        try:
            entry = await kv.get(self.key)
        except nats.js.errors.KeyNotFoundError:
            return None
        except _NATS_ERRORS as exc:
            raise translate(exc, f"read {self.subjects.leader_bucket}/{self.key}") from exc
        return entry.value.decode() if entry.value else None


class SettingsStore:
    """Runtime settings (one encoded document) kept in a KV bucket, last write wins."""

    def __init__(
        self,
        engine: Engine,
        subjects: Subjects | None = None,
        *,
        key: str = "settings",
        durable: bool = True,
        replicas: int = 1,
    ) -> None:
        self._engine = engine
        self.subjects = subjects or Subjects()
        self.key = key
        self.durable = durable
        self.replicas = replicas
        self._kv: KeyValue | None = None

    def bucket_config(self) -> KeyValueConfig:
        return KeyValueConfig(
            bucket=self.subjects.settings_bucket,
            history=5,
            storage=StorageType.FILE if self.durable else StorageType.MEMORY,
            replicas=self.replicas,
            direct=True,
            description="tierq runtime settings",
        )

    async def open(self) -> SettingsStore:
        if self._kv is None:
            self._kv = await ensure_bucket(self._engine, self.bucket_config())
        return self

    async def get(self) -> bytes | None:
        await self.open()
        assert self._kv is not None
        try:
            entry = await self._kv.get(self.key)
        except nats.js.errors.KeyNotFoundError:
            return None
        except _NATS_ERRORS as exc:
            raise translate(exc, f"read {self.subjects.settings_bucket}/{self.key}") from exc
        return entry.value

    async def put(self, data: bytes) -> int:
        """Store ``data``; returns the new revision."""
        await self.open()
        assert self._kv is not None
        with map_nats_errors(f"write {self.subjects.settings_bucket}/{self.key}"):
            return await self._kv.put(self.key, data)
