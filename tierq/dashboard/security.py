"""ASGI middleware in front of the REST app: sessions, CSRF, Origin checks, headers.

What it does, per HTTP request:

1. A state-changing request (not GET/HEAD/OPTIONS) from another origin is refused: the
   ``Origin`` header must name this server, and ``Sec-Fetch-Site`` must not be
   ``cross-site``. Non-browser clients send neither and are unaffected.
2. A request carrying the session cookie and no ``Authorization`` header is authenticated by
   the session: the middleware puts the session's bearer token into the request, so every
   route checks roles and rate limits exactly as for API clients. A state-changing request
   authenticated this way must also carry the session's ``X-CSRF-Token``.
3. With tokens configured, a visit to a dashboard page without a session is redirected to
   ``/login.html`` (API paths answer 401 themselves).
4. Every response gets a strict Content-Security-Policy (no inline script or style, no
   ``eval``, same-origin everything) and the usual hardening headers. ``/docs`` (Swagger
   UI, served from the package by ``tierq.api.docs``) sets its own policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..api.errors import send_problem
from ..errors import PermissionDeniedError, TierqError
from .sessions import COOKIE, SessionStore, csrf_matches

__all__ = ["CSP", "LOGIN_PAGE", "DashboardGuard"]

#: The policy of every dashboard response. ``style-src 'self'`` forbids inline ``style``
#: attributes too; the pages set styles through the CSSOM (``el.style.x``), which CSP allows.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; worker-src 'self'; manifest-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HARDENING = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]

LOGIN_PAGE = "/login.html"
#: What the login page itself needs before anyone is logged in.
PUBLIC_PATHS = frozenset({LOGIN_PAGE, "/login.js", "/app.css", "/favicon.svg"})
#: Paths served by the API, not the dashboard: they answer 401 on their own.
API_PREFIXES = ("/v1/", "/metrics", "/healthz", "/readyz", "/openapi.json", "/docs", "/schedule")
_API_EXACT = frozenset({"/status/", "/v1"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Requests that open a session are exempt from CSRF (there is no session yet) but not
#: from the Origin check.
_CSRF_EXEMPT = frozenset({("POST", "/v1/session")})


def is_api_path(path: str) -> bool:
    return path in _API_EXACT or path.startswith(API_PREFIXES)


class DashboardGuard:
    """The middleware; ``auth_open()`` says whether the API runs without tokens."""

    def __init__(self, app: ASGIApp, store: SessionStore, auth_open: Callable[[], bool]) -> None:
        self.app = app
        self.store = store
        self.auth_open = auth_open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers", ()))
        values = _header_map(headers)
        send = _with_headers(
            send, with_csp=not path.startswith("/docs"), revalidate=not is_api_path(path)
        )
        unsafe = method not in _SAFE_METHODS

        if unsafe and not _same_origin(scope, values):
            await _refuse(scope, send, "cross-origin request refused")
            return

        has_auth = b"authorization" in values
        session = None if has_auth else self.store.get(_cookie(values.get(b"cookie"), COOKIE))
        if session is not None:
            if unsafe and (method, path) not in _CSRF_EXEMPT:
                presented = values.get(b"x-csrf-token", b"").decode("latin-1")
                if not csrf_matches(session, presented):
                    await _refuse(scope, send, "missing or wrong CSRF token (X-CSRF-Token)")
                    return
            headers.append((b"authorization", f"Bearer {session.token}".encode()))
            scope = dict(scope, headers=headers)
        elif (
            not has_auth
            and not unsafe
            and not is_api_path(path)
            and path not in PUBLIC_PATHS
            and not self.auth_open()
        ):
            await _redirect(send, LOGIN_PAGE)
            return
        await self.app(scope, receive, send)


def _header_map(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for name, value in headers:
        # Several Cookie headers (HTTP/2 splits them) are one list.
        if name == b"cookie" and name in out:
            out[name] = out[name] + b"; " + value
        else:
            out.setdefault(name, value)
    return out


def _cookie(header: bytes | None, name: str) -> str | None:
    if not header:
        return None
    want = name.encode()
    for part in header.split(b";"):
        key, sep, value = part.strip().partition(b"=")
        if sep and key == want:
            return value.strip(b'"').decode("latin-1")
    return None


def _same_origin(scope: Scope, values: dict[bytes, bytes]) -> bool:
    """False when the browser tells us the request comes from another site."""
    if values.get(b"sec-fetch-site") == b"cross-site":
        return False
    origin = values.get(b"origin")
    if origin is None:
        return True  # not a browser, or a same-origin GET-like navigation
    host = values.get(b"host")
    if host is None:
        return False
    scheme = scope.get("scheme", "http")
    return origin.decode("latin-1").lower() == f"{scheme}://{host.decode('latin-1')}".lower()


def _with_headers(send: Send, *, with_csp: bool, revalidate: bool) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            present = {name.lower() for name, _ in headers}
            extra = list(_HARDENING)
            if with_csp:
                extra.append((b"content-security-policy", CSP.encode()))
            if revalidate:
                # Pages and scripts are revalidated (a cheap 304 by ETag) on every load, so
                # a browser never shows a cached page without asking (and being refused) and
                # picks up a new dashboard after an upgrade.
                extra.append((b"cache-control", b"no-cache"))
            headers += [(k, v) for k, v in extra if k not in present]
            message = dict(message, headers=headers)
        await send(message)

    return wrapped


async def _refuse(scope: Scope, send: Send, why: str) -> None:
    exc: TierqError = PermissionDeniedError(why)
    await send_problem(scope, send, exc)


async def _redirect(send: Send, location: str) -> None:
    body = b""
    headers: list[Any] = [
        (b"location", location.encode()),
        (b"content-length", b"0"),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": body})
