"""Dashboard sessions: a token is exchanged once for an HttpOnly cookie and a CSRF token.

The browser never keeps the API token: the login page sends it once, and from then on the
session cookie (``HttpOnly; SameSite=Strict``) names a session held here, in memory. Each
session carries its own synchronizer token, which every state-changing request must echo in
``X-CSRF-Token`` (OWASP's synchronizer pattern; SameSite alone does not cover older browsers
or same-site subdomains).

Sessions live in the API process that created them. An API run as several copies behind a
load balancer needs sticky sessions for the dashboard (the REST API itself stays stateless).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["COOKIE", "Session", "SessionStore"]

#: Name of the session cookie.
COOKIE = "tierq_session"
#: Default absolute lifetime of a session, seconds.
LIFETIME = 12 * 3600.0
#: Sessions kept at most; the oldest is dropped first (a login flood cannot grow memory).
MAX_SESSIONS = 10_000


class Session(NamedTuple):
    """One logged-in browser."""

    #: The bearer token the session stands for (kept server-side only).
    token: str
    #: The token's configured name and role, for display.
    name: str
    role: str
    #: Synchronizer token required on every state-changing request.
    csrf: str
    expires_at: float


class SessionStore:
    """Sessions by the SHA-256 of their cookie value, with an absolute expiry."""

    def __init__(
        self,
        lifetime: float = LIFETIME,
        limit: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lifetime = lifetime
        self.limit = limit
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, token: str, name: str, role: str) -> tuple[str, Session]:
        """A new session; returns the cookie value (shown once) and the session."""
        cookie = secrets.token_urlsafe(32)
        session = Session(
            token=token,
            name=name,
            role=role,
            csrf=secrets.token_urlsafe(32),
            expires_at=self._clock() + self.lifetime,
        )
        self._sessions[_digest(cookie)] = session
        while len(self._sessions) > self.limit:
            self._sessions.popitem(last=False)
        return cookie, session

    def get(self, cookie: str | None) -> Session | None:
        """The live session named by a cookie value, or None (unknown or expired)."""
        if not cookie or len(cookie) > 128:
            return None
        key = _digest(cookie)
        session = self._sessions.get(key)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._sessions[key]
            return None
        return session

    def drop(self, cookie: str | None) -> None:
        if cookie:
            self._sessions.pop(_digest(cookie), None)


def csrf_matches(session: Session, presented: str | None) -> bool:
    """Constant-time check of the ``X-CSRF-Token`` a request carries."""
    if not presented:
        return False
    return hmac.compare_digest(session.csrf.encode(), presented.encode("utf-8", "replace"))


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8", "replace")).hexdigest()
