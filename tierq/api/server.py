"""One API process: the REST app under uvicorn and the gRPC server, on one event loop.

``run_api(config)`` is what ``tierq api`` and ``tierq dev`` call; it runs until cancelled.
Tests and embedders use :class:`ApiServer` (an async context manager) to learn the bound
ports when they asked for port 0.

Start-up order: tokens and bind addresses are checked first (an open API beyond loopback
refuses to start), then NATS is connected, then both listeners open. Shutdown order: health
says NOT_SERVING, open event streams end, the HTTP server stops accepting and finishes
requests in flight, gRPC gets a short grace period, the shell runner stops, NATS closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import grpc
import grpc.aio
import uvicorn
from fastapi import FastAPI

from ..engine import ConnectOptions, Engine, Subjects, connect, ensure_events_stream
from ..errors import TierqError
from .auth import Authenticator, is_loopback, load_tokens
from .config import ApiConfig
from .grpc import HealthServicer, add_to_server, set_serving
from .rest import create_app
from .service import ApiService
from .shell_runner import ShellRunner

#: What adds to the REST app once it is made (``tierq.dashboard.install``).
Extension = Callable[[FastAPI, ApiService], None]

__all__ = ["ApiServer", "Extension", "run_api"]

log = logging.getLogger("tierq.api")

#: Seconds in-flight requests get to finish at shutdown.
_GRACE = 3.0


class _Uvicorn(uvicorn.Server):
    """uvicorn without its signal handlers: the process owner (CLI, ``tierq dev``) has them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def connect_options(config: ApiConfig) -> ConnectOptions:
    n = config.nats
    return ConnectOptions(
        servers=list(n.servers) or ["nats://127.0.0.1:4222"],
        user=n.user,
        password=n.password,
        token=n.token,
        creds_file=n.creds,
        tls_ca=n.tls_ca,
        tls_cert=n.tls_cert,
        tls_key=n.tls_key,
        name="tierq-api",
    )


class ApiServer:
    """REST + gRPC over one :class:`ApiService`. ``http_port``/``grpc_port`` once started."""

    def __init__(
        self, config: ApiConfig, engine: Engine | None = None, *, extend: Extension | None = None
    ) -> None:
        """``extend`` adds to the REST app once it is made: ``tierq.dashboard.install`` adds
        the dashboard (its pages, session login and drains), as ``tierq api`` does."""
        self.config = config
        self._extend = extend
        self._own_engine = engine is None
        self._engine = engine
        self.http_port: int | None = None
        self.grpc_port: int | None = None
        self.service: ApiService | None = None
        self._uvicorn: _Uvicorn | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._grpc: grpc.aio.Server | None = None
        self._health: HealthServicer | None = None
        self._shell_task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls_cert else "http"
        host = self.config.host
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        host = self.config.grpc_bind_host
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{self.grpc_port}"

    async def start(self) -> None:
        config = self.config
        auth = Authenticator(
            load_tokens(config.tokens_file, config.tokens or os.environ.get("TIERQ_API_TOKENS")),
            rate=config.rate_limit,
            burst=config.rate_burst,
        )
        hosts = [config.host] + ([config.grpc_bind_host] if config.grpc_port is not None else [])
        auth.check_bind(hosts, insecure=config.insecure)
        if config.tls_cert is None and any(not is_loopback(h) for h in hosts):
            log.warning("API listens beyond loopback without TLS; tokens travel in clear text")
        if self._engine is None:
            self._engine = await connect(connect_options(config))
        try:
            if config.provision_events:
                try:
                    await ensure_events_stream(self._engine, Subjects(config.nats.prefix))
                except TierqError as exc:
                    log.warning("event feed without its stream (live only): %s", exc)
            self.service = ApiService(self._engine, config, auth)
            await self._start_http(self.service)
            if config.grpc_port is not None:
                await self._start_grpc(self.service)
            if config.enable_shell:
                runner = ShellRunner(
                    self._engine,
                    config.nats,
                    config.shell_region,
                    config.shell_concurrency,
                    key=self.service.shell_key,
                )
                self._shell_task = asyncio.get_running_loop().create_task(runner.run())
                log.warning("the shell task type is ENABLED: admins can run commands here")
        except BaseException:
            await self.stop()
            raise
        log.info(
            "tierq API: REST on %s%s",
            self.url,
            f", gRPC on {self.grpc_target}" if self.grpc_port else "",
        )

    async def _start_http(self, service: ApiService) -> None:
        config = self.config
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this. Without it, a response written as headers then
        # body waits for the client's delayed ACK (Nagle): 40 ms per small request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((config.host, config.port))
        except OSError:
            sock.close()
            raise
        sock.listen(1024)
        sock.setblocking(False)
        self._sock = sock
        self.http_port = sock.getsockname()[1]
        app = create_app(service, Path(config.static_dir) if config.static_dir else None)
        if self._extend is not None:
            self._extend(app, service)
        uv_config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=int(_GRACE),
            ssl_certfile=config.tls_cert,
            ssl_keyfile=config.tls_key,
        )
        self._uvicorn = _Uvicorn(uv_config)
        self._http_task = asyncio.get_running_loop().create_task(
            self._uvicorn.serve(sockets=[sock])
        )
        while not self._uvicorn.started:
            if self._http_task.done():
                self._http_task.result()
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)

    async def _start_grpc(self, service: ApiService) -> None:
        config = self.config
        limit = config.max_body_bytes
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", 64 << 20),
                ("grpc.so_reuseport", 0),
                # Refuse clients that ping more often than every 10 s without calls in flight.
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ]
        )
        self._health = add_to_server(server, service)
        address = f"{config.grpc_bind_host}:{config.grpc_port}"
        if ":" in config.grpc_bind_host:
            address = f"[{config.grpc_bind_host}]:{config.grpc_port}"
        if config.tls_cert and config.tls_key:
            port = server.add_secure_port(address, _credentials(config.tls_cert, config.tls_key))
        else:
            port = server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"cannot listen for gRPC on {address}")
        self._grpc = server
        await server.start()
        self.grpc_port = port
        await set_serving(self._health, True)

    async def stop(self) -> None:
        if self._health is not None:
            with contextlib.suppress(Exception):
                await set_serving(self._health, False)
        if self.service is not None:
            await self.service.close()
        if self._uvicorn is not None and self._http_task is not None:
            self._uvicorn.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._http_task
            self._http_task = None
        if self._sock is not None:
            # uvicorn closes it when it got as far as serving; this covers a failed start.
            self._sock.close()
            self._sock = None
        if self._grpc is not None:
            await self._grpc.stop(_GRACE)
            self._grpc = None
        if self._shell_task is not None:
            self._shell_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._shell_task
            self._shell_task = None
        if self._own_engine and self._engine is not None:
            await self._engine.close()
            self._engine = None

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """Wait until cancelled (or until the HTTP server stops on its own)."""
        assert self._http_task is not None
        await asyncio.shield(self._http_task)


def _credentials(cert: str, key: str) -> grpc.ServerCredentials:
    # Read once at start-up; a blocking read here delays nothing that is serving yet.
    return grpc.ssl_server_credentials([(Path(key).read_bytes(), Path(cert).read_bytes())])


async def run_api(config: ApiConfig, *, extend: Extension | None = None) -> None:
    """Serve the API until cancelled; the caller owns signals (cancel this on SIGTERM)."""
    async with ApiServer(config, extend=extend) as server:
        await server.serve_forever()
