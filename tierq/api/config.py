"""Settings of one API process (REST + gRPC), validated when it starts."""

from __future__ import annotations

import msgspec

from ..config import NatsConfig
from ..errors import InvalidRequestError

__all__ = ["ApiConfig"]


class ApiConfig(msgspec.Struct, kw_only=True, frozen=True):
    nats: NatsConfig
    #: REST (HTTP) listener. Port 0 picks a free one.
    host: str = "127.0.0.1"
    port: int = 8000
    #: gRPC listener; ``grpc_port`` None disables gRPC.
    grpc_host: str | None = None
    grpc_port: int | None = 50051
    #: JSON tokens file (see ``tierq.api.auth``) and/or the ``role:token,…`` string.
    tokens_file: str | None = None
    tokens: str | None = None
    #: Serve without tokens on a non-loopback address (never do this outside a lab).
    insecure: bool = False
    #: Default per-token rate limit, requests per second (0: none) and burst.
    rate_limit: float = 1000.0
    rate_burst: float = 2000.0
    #: Largest accepted request body (REST) or message (gRPC), bytes. Above: 413 /
    #: RESOURCE_EXHAUSTED before anything is parsed. NATS's max_payload bounds it anyway.
    max_body_bytes: int = 1 << 20
    #: Most tasks in one batch submission.
    max_batch: int = 10_000
    #: Seconds to wait for the master to answer an ordinary request.
    request_timeout: float = 10.0
    #: Longest a submitted ``run_at`` may lie in the future, seconds.
    max_schedule_ahead: float = 366 * 86400.0
    #: KEDA's external scaler answers without a token (it tells only queue depths; keep the
    #: gRPC port inside the cluster). Otherwise KEDA's calls need a read token.
    keda_open: bool = False
    #: Run the built-in ``shell`` task type (and ``POST /schedule``) in this process.
    enable_shell: bool = False
    #: Region the shell runner pulls from, and its concurrency.
    shell_region: str = "default"
    shell_concurrency: int = 4
    #: Secret shared by every API process to sign shell tasks (default: the API's NATS
    #: password; without either, each process runs only the commands it accepted).
    shell_key: str | None = None
    #: Host names the REST listener answers for (``Host`` header, port ignored); others get
    #: 421. Empty: the loopback names when it listens on loopback, else any name.
    allowed_hosts: tuple[str, ...] = ()
    #: TLS for both listeners (PEM files). Without it, say so when not on loopback.
    tls_cert: str | None = None
    tls_key: str | None = None
    #: Folder of static files served at ``/`` (the dashboard); None: the dashboard's own pages
    #: when ``tierq.dashboard.install`` extends the app, else nothing.
    static_dir: str | None = None
    #: Seconds between SSE keep-alive comments.
    sse_keepalive: float = 15.0
    #: Longest a worker's lease call (long poll) and a ``tasks:wait`` call are held; longer
    #: requests are shortened to this (keep it under the timeouts of proxies in front).
    max_pull_wait: float = 30.0
    max_wait: float = 300.0
    #: Create the ``<PREFIX>_EVENTS`` stream at start if nothing has (the feed resumes from it).
    provision_events: bool = True

    def __post_init__(self) -> None:
        for name in ("port", "grpc_port"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 65535:
                raise InvalidRequestError(f"{name} must be 0-65535, got {value}", field=name)
        if not 1024 <= self.max_body_bytes <= 64 << 20:
            raise InvalidRequestError(
                "max_body_bytes must be between 1 KiB and 64 MiB", field="max_body_bytes"
            )
        if not 1 <= self.max_batch <= 100_000:
            raise InvalidRequestError("max_batch must be 1-100000", field="max_batch")
        if self.rate_limit < 0 or self.rate_burst < 0:
            raise InvalidRequestError("rate limits must not be negative", field="rate_limit")
        if self.request_timeout <= 0:
            raise InvalidRequestError("request_timeout must be > 0", field="request_timeout")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidRequestError("tls_cert and tls_key go together", field="tls_cert")
        if not 1 <= self.shell_concurrency <= 256:
            raise InvalidRequestError("shell_concurrency must be 1-256", field="shell_concurrency")

    @property
    def grpc_bind_host(self) -> str:
        return self.grpc_host if self.grpc_host is not None else self.host
