"""The ``Host`` allow-list (against DNS rebinding) and HSTS, in front of the REST app.

DNS rebinding: a page on ``evil.example`` re-points its name at 127.0.0.1, and the browser
then sends the page's requests to the open loopback API, with ``Host: evil.example`` and
``Origin: http://evil.example``. An Origin check that compares Origin with Host passes (both
are the attacker's); the Host itself gives it away. So the API answers only requests whose
Host is one of its names: on a loopback address ``localhost``, ``127.0.0.1`` and ``[::1]``
(any port) unless configured; behind a proxy, the public names given in ``allowed_hosts``.
Anything else gets 421 (Misdirected Request) with a problem body, before any route runs.

Over TLS every response also carries ``Strict-Transport-Security``, so a browser that has
been here once never falls back to plain HTTP.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import is_loopback
from .errors import MisdirectedRequestError, send_problem

__all__ = ["HSTS", "LOOPBACK_NAMES", "HostGuard", "allowed_hosts", "host_name"]

#: Names of this machine's loopback interface: what a browser sends to a loopback API.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
#: One year; subdomains are the operator's business, so no includeSubDomains.
HSTS = b"max-age=31536000"


def allowed_hosts(configured: tuple[str, ...], binds: list[str]) -> frozenset[str] | None:
    """The names a REST listener answers for: ``configured``, else the loopback names when
    it listens on loopback only, else None (any: a public API is guarded by its tokens)."""
    if configured:
        return frozenset(host_name(h) for h in configured)
    if all(is_loopback(h) for h in binds):
        return LOOPBACK_NAMES | {host_name(h) for h in binds}
    return None


def host_name(value: str) -> str:
    """The host of a ``Host`` header without its port, lower-case (``[::1]:80`` -> ``::1``)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class HostGuard:
    """ASGI middleware: refuse requests for other hosts; add HSTS over TLS.

    Args:
        allowed: host names answered (no ports); None answers any (tokens guard the API).
        hsts: add ``Strict-Transport-Security`` to every response.
    """

    def __init__(self, app: ASGIApp, allowed: frozenset[str] | None, hsts: bool) -> None:
        self.app = app
        self.allowed = frozenset(name.lower() for name in allowed) if allowed else None
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.hsts:
            send = _with_hsts(send)
        if self.allowed is not None:
            host = b""
            for name, value in scope.get("headers", ()):
                if name == b"host":
                    host = value
                    break
            if host_name(host.decode("latin-1")) not in self.allowed:
                await _misdirected(scope, send, host.decode("latin-1"))
                return
        await self.app(scope, receive, send)


def _with_hsts(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            headers.append((b"strict-transport-security", HSTS))
            message = dict(message, headers=headers)
        await send(message)

    return wrapped


async def _misdirected(scope: Scope, send: Send, host: str) -> None:
    exc = MisdirectedRequestError(
        f"this server does not answer for host {host[:100]!r}; "
        "add it to the API's allowed hosts (--allowed-host) if it is one of its names"
    )
    await send_problem(scope, send, exc)
