"""Typed settings of every tierq process, validated when the process starts.

Values come from CLI flags, then ``TIERQ_*`` environment variables, then these defaults.
Scheduling policy that may change at run time (admission limits, aging, breakers…) is not
here: it lives in ``tierq.core.Settings`` and is changed through the API.
"""

from __future__ import annotations

import os

import msgspec

from .core.settings import Settings
from .core.validate import check_subject_token, check_text
from .credentials import NatsUsers
from .errors import InvalidRequestError


class ConnectOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How to reach NATS. Every process (master, region, worker, API) takes one of these."""

    #: Server URLs; more than one for a cluster (the client fails over between them).
    servers: list[str] = msgspec.field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    user: str | None = None
    password: str | None = None
    token: str | None = None
    #: A ``.creds`` file (JWT + NKey seed), as issued by ``nsc``.
    creds_file: str | None = None
    #: TLS: CA bundle to verify the server, and an optional client certificate.
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_hostname: str | None = None
    #: Prefix of this connection's reply subjects; None: ``_INBOX.<user>`` when a user is
    #: set (the subjects its NATS permissions let it subscribe to), else ``_INBOX``.
    inbox_prefix: str | None = None
    #: Connection name, shown in the server's monitoring (``/connz``).
    name: str = "tierq"
    #: Seconds for one TCP/TLS connect attempt.
    connect_timeout: float = 2.0
    #: Attempts per server before :func:`connect` gives up (the first connection only).
    connect_attempts: int = 2
    #: After the first connection: keep reconnecting (-1: forever), waiting this long between tries.
    max_reconnect_attempts: int = -1
    reconnect_wait: float = 0.5
    #: Default timeout of :meth:`Engine.request` and JetStream API calls.
    request_timeout: float = 5.0
    #: Bytes buffered while disconnected before publishing fails (large: log batches are big).
    pending_size: int = 64 * 1024 * 1024

    def __repr__(self) -> str:
        # Never print secrets into logs.
        return (
            f"ConnectOptions(servers={self.servers!r}, name={self.name!r}, "
            f"auth={'yes' if self.password or self.token or self.creds_file else 'no'})"
        )


class NatsConfig(msgspec.Struct, kw_only=True, frozen=True):
    """How to reach NATS. ``servers`` empty means: start an embedded nats-server."""

    servers: tuple[str, ...] = ()
    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    prefix: str = "tierq"
    #: A tierq credentials file (JSON, one NATS user per role, as ``tierq dev`` writes it);
    #: :meth:`for_role` takes the user of a process's role from it.
    credentials: str | None = None

    def __post_init__(self) -> None:
        check_subject_token(self.prefix, "prefix")

    def __repr__(self) -> str:
        # Never print the password into logs.
        return (
            f"NatsConfig(servers={self.servers!r}, prefix={self.prefix!r}, user={self.user!r}, "
            f"credentials={self.credentials!r})"
        )

    def for_role(self, role: str, region: str | None = None) -> NatsConfig:
        """This config with the NATS user of ``role`` (and ``region``) from the credentials file.

        An explicit user, token or ``.creds`` file wins over the credentials file; without
        any of them the config is returned unchanged (a server without authentication).
        """
        if self.user or self.token or self.creds or not self.credentials:
            return self
        users = NatsUsers.load(self.credentials)
        found = users.find(role, region)
        if found is None:
            where = f" of region {region!r}" if region is not None else ""
            raise InvalidRequestError(
                f"the NATS credentials file {self.credentials!r} has no {role} user{where}",
                field="nats_credentials",
            )
        return msgspec.structs.replace(self, user=found.user, password=found.password)

    def connect_options(self, *, name: str) -> ConnectOptions:
        """Engine connection options for a process called ``name``."""
        return ConnectOptions(
            servers=list(self.servers) or ["nats://127.0.0.1:4222"],
            user=self.user,
            password=self.password,
            token=self.token,
            creds_file=self.creds,
            tls_ca=self.tls_ca,
            tls_cert=self.tls_cert,
            tls_key=self.tls_key,
            name=name,
        )

    @classmethod
    def from_env(cls, servers: str | None = None, prefix: str | None = None) -> NatsConfig:
        raw = servers or os.environ.get("TIERQ_NATS", "")
        return cls(
            servers=tuple(s.strip() for s in raw.split(",") if s.strip()),
            user=os.environ.get("TIERQ_NATS_USER"),
            password=os.environ.get("TIERQ_NATS_PASSWORD"),
            token=os.environ.get("TIERQ_NATS_TOKEN"),
            creds=os.environ.get("TIERQ_NATS_CREDS"),
            tls_ca=os.environ.get("TIERQ_NATS_TLS_CA"),
            tls_cert=os.environ.get("TIERQ_NATS_TLS_CERT"),
            tls_key=os.environ.get("TIERQ_NATS_TLS_KEY"),
            prefix=prefix or os.environ.get("TIERQ_PREFIX", "tierq"),
            credentials=os.environ.get("TIERQ_NATS_CREDENTIALS") or _dev_credentials(),
        )


#: Where ``tierq dev`` (default data directory) keeps its NATS users, relative to where it ran.
DEV_CREDENTIALS = os.path.join(".tierq", "nats", "credentials.json")


def _dev_credentials() -> str | None:
    """``tierq dev``'s credentials file when this process runs where ``tierq dev`` did.

    So a script or a ``tierq submit`` next to a running ``tierq dev`` logs in without setup;
    anything configured (``TIERQ_NATS_CREDENTIALS``, a user, a token) wins.
    """
    return DEV_CREDENTIALS if os.path.isfile(DEV_CREDENTIALS) else None


class MasterConfig(msgspec.Struct, kw_only=True, frozen=True):
    nats: NatsConfig
    #: Identity in the leader lease; defaults to host:pid.
    holder: str | None = None
    #: How long a leader lease lasts without renewal: a standby takes over about this long
    #: after the leader dies (renewed four times per lease, see master/leadership.py).
    leader_lease_seconds: float = 2.0
    #: Take a snapshot after this many events since the last one (bounds replay at start).
    snapshot_every: int = 200_000
    #: Longest a region's lease request is held when nothing is ready.
    max_lease_wait: float = 5.0
    #: Scheduling settings applied when the log is new (later changes go through the API).
    initial_settings: Settings | None = None
    #: Replicas of the log, the intake, the events stream and the buckets. None: 3 when the
    #: NATS server is part of a cluster, 1 otherwise. Existing streams are brought to it.
    replicas: int | None = None


class RegionConfig(msgspec.Struct, kw_only=True, frozen=True):
    nats: NatsConfig
    name: str = "default"
    labels: tuple[str, ...] = ()
    #: A worker that has not heartbeated for this long is lost; its tasks are re-queued.
    worker_lease_seconds: float = 10.0
    heartbeat_interval: float = 1.0
    #: Reports are sent upward at most this often (they batch in between).
    report_interval: float = 0.002
    #: Tasks held locally beyond the workers' free slots (prefetch), as a count.
    prefetch: int = 0

    def __post_init__(self) -> None:
        check_subject_token(self.name, "region")


class WorkerConfig(msgspec.Struct, kw_only=True, frozen=True):
    nats: NatsConfig
    modules: tuple[str, ...]
    region: str = "default"
    concurrency: int = 8
    pool: str = "async"
    worker_id: str | None = None
    #: On SIGTERM, running tasks get this long to finish before they are released.
    drain_grace: float = 30.0

    def __post_init__(self) -> None:
        check_subject_token(self.region, "region")
        if self.worker_id is not None:
            # The region refuses longer or unprintable ids; say so before connecting.
            check_text(self.worker_id, "worker_id", 256)
        if self.pool not in ("async", "thread", "process"):
            raise InvalidRequestError(
                f"pool must be async, thread or process, not {self.pool!r}", field="pool"
            )
        if not 1 <= self.concurrency <= 10_000:
            raise InvalidRequestError(
                "concurrency must be between 1 and 10000", field="concurrency"
            )
