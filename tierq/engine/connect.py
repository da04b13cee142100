"""Connecting to NATS: options (URLs, auth, TLS, reconnects) and the :class:`Engine` handle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js import JetStreamContext

from ..config import ConnectOptions
from ..errors import EngineUnavailableError, PermissionDeniedError, UnauthenticatedError
from ._cancel import guard_cancellation
from ._errors import map_nats_errors
from .auth import inbox_prefix

__all__ = ["ConnectOptions", "Engine", "Message", "Subscription", "connect"]

log = logging.getLogger("tierq.engine")

_SUBJECT_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,200}")
#: How nats-server words a refused publish or subscribe (sent as -ERR; the connection stays).
_VIOLATION = re.compile(
    r'Permissions Violation for (Publish|Subscription) to "([^"]*)"', re.IGNORECASE
)


class Message:
    """A message delivered to a :meth:`Engine.subscribe` callback."""

    __slots__ = ("_msg",)

    def __init__(self, msg: Msg) -> None:
        self._msg = msg

    @property
    def subject(self) -> str:
        return self._msg.subject

    @property
    def data(self) -> bytes:
        return self._msg.data

    @property
    def reply(self) -> str:
        """Where a request wants its answer ('' for a plain publish)."""
        return self._msg.reply

    @property
    def headers(self) -> dict[str, str] | None:
        return self._msg.headers

    async def respond(self, payload: bytes, headers: dict[str, str] | None = None) -> None:
        """Answer a request; does nothing for a message that expects no answer."""
        if not self._msg.reply:
            return
        with map_nats_errors(f"respond on {self._msg.subject}"):
            await self._msg._client.publish(self._msg.reply, payload, headers=headers)


Callback = Callable[[Message], Awaitable[None]]


class Subscription:
    """A live subscription; :meth:`unsubscribe` ends it (idempotent)."""

    __slots__ = ("_done", "_sub", "subject")

    def __init__(self, sub: NatsSubscription, subject: str) -> None:
        self._sub = sub
        self.subject = subject
        self._done = False

    async def unsubscribe(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            await self._sub.unsubscribe()
        except nats.errors.Error as exc:
            # Closed connection or already gone: the subscription is over either way.
            log.debug("unsubscribe %s: %r", self.subject, exc)

    async def drain(self) -> None:
        """Stop receiving, but let callbacks for already delivered messages finish."""
        if self._done:
            return
        self._done = True
        try:
            await self._sub.drain()  # type: ignore[no-untyped-call]
        except nats.errors.Error as exc:
            log.debug("drain %s: %r", self.subject, exc)


class Engine:
    """A connection to NATS and its JetStream context: the only door to the broker.

    Other tierq packages use the methods; the ``nc`` and ``js`` accessors are for the
    other ``tierq.engine`` modules only.
    """

    def __init__(
        self, nc: NatsClient, opts: ConnectOptions, events: _ConnectionEvents | None = None
    ) -> None:
        guard_cancellation(nc)  # before the JetStream context: it calls nc.request
        self._nc = nc
        self._events = events
        self._js = nc.jetstream(timeout=opts.request_timeout)
        self.options = opts

    @property
    def nc(self) -> NatsClient:
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        return self._js

    @property
    def connected_url(self) -> str | None:
        url = self._nc.connected_url
        return url.geturl() if url is not None else None

    @property
    def is_connected(self) -> bool:
        return self._nc.is_connected

    @property
    def is_closed(self) -> bool:
        return self._nc.is_closed

    @property
    def cluster(self) -> str | None:
        """The name of the NATS cluster the connected server belongs to (None: standalone)."""
        info = getattr(self._nc, "_server_info", None) or {}
        name = info.get("cluster")
        return name if isinstance(name, str) and name else None

    @property
    def max_payload(self) -> int:
        """The server's ``max_payload``: no single message can be larger."""
        return self._nc.max_payload

    def new_inbox(self) -> str:
        return self._nc.new_inbox()

    async def request(
        self,
        subject: str,
        payload: bytes,
        timeout: float | None = None,
        headers: dict[str, str] | None = None,
        *,
        probe: bool = False,
    ) -> bytes:
        """Send a request and return the reply's payload.

        With ``probe`` on a connection with a user, a refused publish raises at once rather
        than after ``timeout`` (one more round trip: for rare requests such as settings).

        Raises:
            EngineUnavailableError: nobody answers on ``subject``, or not within ``timeout``.
            PermissionDeniedError: this connection's user may not publish on ``subject``.
        """
        t = self.options.request_timeout if timeout is None else timeout
        start = time.monotonic()
        try:
            with map_nats_errors(f"request on {subject}"):
                if probe and (self.options.user or self.options.creds_file or self.options.token):
                    pending = asyncio.ensure_future(
                        self._nc.request(subject, payload, timeout=t, headers=headers)
                    )
                    await self._probe(pending, subject, start, t)
                    msg = await pending
                else:
                    msg = await self._nc.request(subject, payload, timeout=t, headers=headers)
        except EngineUnavailableError as exc:
            # A refused publish only shows as an asynchronous -ERR and then a timeout.
            self._raise_if_denied("publish", subject, start, exc)
            raise
        return msg.data

    async def gather(
        self, subject: str, payload: bytes, *, timeout: float, settle: float = 0.05
    ) -> list[bytes]:
        """Every answer to one request, for a subject several services answer (the
        autoscalers of one region): after the first, more are awaited until ``settle``
        seconds pass without one, never past ``timeout``. No answer in time, or nobody
        subscribed (the server says so at once), is an empty list."""
        replies: list[bytes] = []
        arrived = asyncio.Event()
        nobody = False

        async def on_reply(msg: Message) -> None:
            nonlocal nobody
            if not msg.data and (msg.headers or {}).get("Status") == "503":
                nobody = True  # no responders
            else:
                replies.append(msg.data)
            arrived.set()

        inbox = self.new_inbox()
        sub = await self.subscribe(inbox, cb=on_reply)
        try:
            with map_nats_errors(f"request on {subject}"):
                await self._nc.publish(subject, payload, reply=inbox)
            deadline = asyncio.get_running_loop().time() + timeout
            while not nobody:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                arrived.clear()
                try:
                    async with asyncio.timeout(min(left, settle) if replies else left):
                        await arrived.wait()
                except TimeoutError:
                    if replies:
                        break
        finally:
            await sub.unsubscribe()
        return replies

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> None:
        """Fire-and-forget publish on core NATS (buffered; see :meth:`flush`)."""
        with map_nats_errors(f"publish on {subject}"):
            await self._nc.publish(subject, payload, headers=headers)

    async def publish_many(self, messages: Iterable[tuple[str, bytes]]) -> None:
        """Publish several messages with one error check: the master's event fan-out.

        Per message this costs one client-side buffer append, so a commit's events go out in
        a few socket writes instead of one Python round trip each.
        """
        publish = self._nc.publish
        with map_nats_errors("publish"):
            for subject, payload in messages:
                await publish(subject, payload)

    async def subscribe(
        self,
        subject: str,
        *,
        cb: Callback,
        queue: str | None = None,
        pending_msgs_limit: int = 65536,
    ) -> Subscription:
        """Call ``cb`` for every message on ``subject`` (one at a time, in order).

        With ``queue``, subscribers sharing the queue name split the messages between them.
        """

        async def deliver(msg: Msg) -> None:
            await cb(Message(msg))

        start = time.monotonic()
        with map_nats_errors(f"subscribe to {subject}"):
            sub = await self._nc.subscribe(
                subject, queue=queue or "", cb=deliver, pending_msgs_limit=pending_msgs_limit
            )
            if self.options.user or self.options.creds_file or self.options.token:
                # With permissions, the server refuses a subscription with an asynchronous
                # -ERR; a round trip makes it arrive before we claim to be subscribed. Two:
                # nats-py writes a PING straight to the socket, so the first may overtake
                # the SUB still in the write buffer; the second cannot.
                wait = max(1, round(self.options.request_timeout))
                await self._nc.flush(timeout=wait)
                await self._nc.flush(timeout=wait)
        subscription = Subscription(sub, subject)
        try:
            self._raise_if_denied("subscription", subject, start)
        except PermissionDeniedError:
            await subscription.unsubscribe()
            raise
        return subscription

    async def _probe(
        self, pending: asyncio.Future[Msg], subject: str, since: float, timeout: float
    ) -> None:
        # The server answers a PING after what came before it, so a refused publish's -ERR
        # arrives first; two, as in subscribe(): the first PING may overtake the PUB.
        try:
            for _ in range(2):
                if not pending.done():
                    await self._nc.flush(timeout=max(1, round(timeout)))
            if not pending.done():
                self._raise_if_denied("publish", subject, since)
        except BaseException:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
            raise

    def _raise_if_denied(
        self, verb: str, subject: str, since: float, cause: BaseException | None = None
    ) -> None:
        if self._events is None:
            return
        # nats-py lower-cases the server's error text, subject included.
        at = self._events.denied.get((verb, subject.lower()))
        if at is not None and at >= since:
            action = "publish to" if verb == "publish" else "subscribe to"
            raise PermissionDeniedError(
                f"NATS refused to let this connection {action} {subject!r}: its user "
                f"({self.options.user or 'anonymous'}) lacks that permission"
            ) from cause

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until the server has seen everything published so far."""
        t = self.options.request_timeout if timeout is None else timeout
        with map_nats_errors("flush"):
            await self._nc.flush(timeout=max(1, round(t)))

    async def drain(self) -> None:
        """Finish in-flight callbacks, flush, then close."""
        if self._nc.is_closed:
            return
        self._closing()
        with map_nats_errors("drain"):
            await self._nc.drain()

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._nc.is_closed:
            return
        self._closing()
        with map_nats_errors("close"):
            await self._nc.close()

    def _closing(self) -> None:
        if self._events is not None:
            self._events.closing = True

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _tls_context(opts: ConnectOptions) -> ssl.SSLContext | None:
    if not (opts.tls_ca or opts.tls_cert):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=opts.tls_ca)
    if opts.tls_cert:
        ctx.load_cert_chain(opts.tls_cert, opts.tls_key)
    return ctx


async def connect(opts: ConnectOptions | None = None) -> Engine:
    """Connect to NATS and return an :class:`Engine`.

    Raises:
        EngineUnavailableError: no server answered ("cannot reach NATS at <url>: <why>").
    """
    opts = opts or ConnectOptions()
    where = ", ".join(opts.servers)
    events = _ConnectionEvents(where)
    kwargs: dict[str, Any] = {}
    if opts.creds_file:
        kwargs["user_credentials"] = opts.creds_file
    try:
        tls = _tls_context(opts)
    except (OSError, ssl.SSLError) as exc:
        raise EngineUnavailableError(f"cannot load TLS files for NATS at {where}: {exc}") from exc
    nc = NatsClient()
    try:
        await nc.connect(
            servers=list(opts.servers),
            name=opts.name,
            user=opts.user,
            password=opts.password,
            token=opts.token,
            tls=tls,
            tls_hostname=opts.tls_hostname,
            # nats-py's API says int but uses these as floats.
            connect_timeout=opts.connect_timeout,  # type: ignore[arg-type]
            reconnect_time_wait=opts.reconnect_wait,  # type: ignore[arg-type]
            # The first connection must fail in bounded time; the reconnect policy proper
            # is installed once we are connected (nats-py uses one knob for both).
            max_reconnect_attempts=max(1, opts.connect_attempts - 1),
            allow_reconnect=True,
            pending_size=opts.pending_size,
            inbox_prefix=_inbox_prefix(opts),
            error_cb=events.on_error,
            disconnected_cb=events.on_disconnected,
            reconnected_cb=events.on_reconnected,
            **kwargs,
        )
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        await _quiet_close(nc)
        refused = _is_auth_error(exc) or events.auth_error is not None
        if refused:
            # The server may close the socket right after its -ERR, so the error nats-py
            # raises last can be a reset; the refusal is what the user must act on.
            who = f"user {opts.user!r}" if opts.user else "a connection without a NATS user"
            raise UnauthenticatedError(
                f"NATS at {where} refused the login of {who}: {_describe(events.auth_error or exc)}"
            ) from exc
        cause = events.last_error or exc
        raise EngineUnavailableError(f"cannot reach NATS at {where}: {_describe(cause)}") from exc
    nc.options["max_reconnect_attempts"] = opts.max_reconnect_attempts
    events.connected = True
    return Engine(nc, opts, events)


def _inbox_prefix(opts: ConnectOptions) -> str:
    if opts.inbox_prefix:
        return opts.inbox_prefix
    if opts.user and _SUBJECT_TOKEN.fullmatch(opts.user):
        return inbox_prefix(opts.user)
    return "_INBOX"


class _ConnectionEvents:
    """Logs what the client reports; quiet about the disconnect that closing causes."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.closing = False
        #: Until the first connection, failures are the caller's error to raise, not logs.
        self.connected = False
        self.last_error: BaseException | None = None
        self.auth_error: BaseException | None = None
        #: (publish|subscription, lower-cased subject) -> when the server last refused it.
        self.denied: dict[tuple[str, str], float] = {}

    async def on_error(self, exc: Exception) -> None:
        self.last_error = exc
        if _is_auth_error(exc):
            self.auth_error = exc
        found = _VIOLATION.search(str(exc))
        if found is not None:
            if len(self.denied) > 1000:
                self.denied.clear()
            self.denied[(found.group(1).lower(), found.group(2).lower())] = time.monotonic()
            log.error("NATS (%s) refused: %s", self.where, exc)
            return
        if not self.closing:
            log.log(_level(self.connected), "NATS error (%s): %r", self.where, exc)

    async def on_disconnected(self) -> None:
        if not self.closing:
            log.log(_level(self.connected), "disconnected from NATS (%s)", self.where)

    async def on_reconnected(self) -> None:
        log.info("reconnected to NATS (%s)", self.where)


def _level(connected: bool) -> int:
    """Warnings once connected; before, ``connect`` raises what went wrong in one error."""
    return logging.WARNING if connected else logging.DEBUG


def _is_auth_error(exc: BaseException) -> bool:
    return isinstance(exc, nats.errors.AuthorizationError) or (
        "authorization violation" in str(exc).lower()
    )


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if text.startswith("nats:") else f"{type(exc).__name__}: {text}"


async def _quiet_close(nc: NatsClient) -> None:
    try:
        await nc.close()
    except Exception as exc:
        log.debug("close after failed connect: %r", exc)
