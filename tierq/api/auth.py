"""Bearer tokens, roles and per-token rate limits, shared by REST and gRPC.

A token is a random opaque string (``python -c "import secrets; print(secrets.token_urlsafe(32))"``)
given to the server in a JSON file or in ``TIERQ_API_TOKENS``. Only its SHA-256 is kept in memory,
and a file may hold the hash alone, so the secret itself never needs to sit on the server::

    {"tokens": [
      {"name": "ci",        "role": "submit", "token": "…"},
      {"name": "dashboard", "role": "admin",  "sha256": "9f86d0…", "rate": 50, "burst": 100},
      {"name": "gpu-box",   "role": "worker", "token": "…"}
    ]}

    TIERQ_API_TOKENS="admin:<token>,read:<token>"        (or "name:role:<token>")

Roles: ``read`` sees everything; ``submit`` also submits, cancels, retries and reprioritises;
``worker`` only leases, heartbeats and reports (pull over the API); ``admin`` does all of that
and changes settings. With no tokens at all the API is *open* (everyone is admin), which is
allowed on a loopback address only, unless the operator says ``--insecure``.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import msgspec

from ..errors import InvalidRequestError, PermissionDeniedError, UnauthenticatedError
from .errors import RateLimitedError

__all__ = [
    "ANONYMOUS",
    "Authenticator",
    "Permission",
    "Principal",
    "Role",
    "TokenBucket",
    "TokenEntry",
    "is_loopback",
    "load_tokens",
]

log = logging.getLogger("tierq.api")

#: Shortest accepted token: a guessable token is no token.
MIN_TOKEN_LENGTH = 16
_MAX_HEADER = 1024


class Role(enum.Enum):
    #: See tasks, workflows, regions, workers, stats, settings and events.
    READ = "read"
    #: READ, plus submit, cancel, retry and reprioritise.
    SUBMIT = "submit"
    #: Lease, heartbeat and report as a worker; nothing else.
    WORKER = "worker"
    #: Everything, including settings and the shell task type.
    ADMIN = "admin"


class Permission(enum.Enum):
    READ = "read"
    SUBMIT = "submit"
    WORK = "work"
    ADMIN = "admin"


_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.READ: frozenset({Permission.READ}),
    Role.SUBMIT: frozenset({Permission.READ, Permission.SUBMIT}),
    Role.WORKER: frozenset({Permission.WORK}),
    Role.ADMIN: frozenset(Permission),
}


class TokenBucket:
    """``rate`` requests per second on average, bursts of up to ``burst``."""

    __slots__ = ("_level", "_stamp", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._level = self.burst
        self._stamp = now

    def take(self, now: float, cost: float = 1.0) -> float | None:
        """Spend ``cost``; None when allowed, else the seconds until it would be."""
        self._level = min(self.burst, self._level + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._level >= cost:
            self._level -= cost
            return None
        return (cost - self._level) / self.rate


class Principal:
    """Who is calling: the token's name and role, and its rate limiter."""

    __slots__ = ("bucket", "name", "role")

    def __init__(self, name: str, role: Role, bucket: TokenBucket | None) -> None:
        self.name = name
        self.role = role
        self.bucket = bucket

    def can(self, permission: Permission) -> bool:
        return permission in _GRANTS[self.role]

    def new_worker_id(self) -> str:
        """A fresh worker id this caller may use (see :meth:`check_worker`)."""
        suffix = secrets.token_hex(8)
        return f"{self.name}:{suffix}" if self.role is Role.WORKER else f"api-{suffix}"

    def check_worker(self, worker: str) -> None:
        """A worker token acts only as its own workers: ``<token name>`` or ``<name>:<any>``.

        Otherwise any worker token could heartbeat, lease or report for another's worker id
        (forged outcomes for tasks it was never given). Admins may act as any worker.
        """
        if self.role is not Role.WORKER:
            return
        if worker != self.name and not worker.startswith(f"{self.name}:"):
            raise PermissionDeniedError(
                f"the worker token {self.name!r} may act only as worker {self.name!r} or "
                f"{self.name + ':<suffix>'!r}, not {worker[:128]!r}"
            )

    def __repr__(self) -> str:
        return f"Principal({self.name!r}, {self.role.value})"


#: The caller of an open (tokenless) API.
ANONYMOUS = "anonymous"


class TokenEntry(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One configured token: the secret itself or its SHA-256 (hex), a role, optional limits."""

    name: str
    role: Role
    token: str | None = None
    sha256: str | None = None
    rate: float | None = None
    burst: float | None = None

    def digest(self) -> str:
        if self.sha256 is not None:
            value = self.sha256.lower()
            if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
                raise InvalidRequestError(
                    f"token {self.name!r}: sha256 must be 64 hex digits", field="sha256"
                )
            return value
        if self.token is None:
            raise InvalidRequestError(
                f"token {self.name!r} needs a 'token' or a 'sha256'", field="token"
            )
        if len(self.token) < MIN_TOKEN_LENGTH:
            raise InvalidRequestError(
                f"token {self.name!r} is shorter than {MIN_TOKEN_LENGTH} characters",
                field="token",
            )
        return _sha256(self.token)


class _TokenFile(msgspec.Struct, forbid_unknown_fields=True):
    tokens: list[TokenEntry]


def load_tokens(path: str | None = None, env: str | None = None) -> list[TokenEntry]:
    """Tokens from a JSON file and/or a ``role:token,…`` string (``TIERQ_API_TOKENS``)."""
    entries: list[TokenEntry] = []
    if path:
        file = Path(path)
        try:
            mode = file.stat().st_mode
            raw = file.read_bytes()
        except OSError as exc:
            raise InvalidRequestError(
                f"cannot read tokens file {path}: {exc.strerror}", field="tokens_file"
            ) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("tokens file %s is readable by others; chmod 600 it", path)
        try:
            entries += msgspec.json.decode(raw, type=_TokenFile).tokens
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise InvalidRequestError(
                f"tokens file {path} is invalid: {exc}", field="tokens_file"
            ) from None
    if env:
        for i, item in enumerate(p.strip() for p in env.split(",")):
            if not item:
                continue
            parts = item.split(":", 2)
            if len(parts) == 2:
                name, (role, token) = f"env-{i + 1}", parts
            elif len(parts) == 3:
                name, role, token = parts
            else:
                raise InvalidRequestError(
                    f"TIERQ_API_TOKENS item {i + 1} must be role:token or name:role:token",
                    field="TIERQ_API_TOKENS",
                )
            try:
                entries.append(TokenEntry(name=name, role=Role(role), token=token))
            except ValueError:
                raise InvalidRequestError(
                    f"TIERQ_API_TOKENS item {i + 1}: unknown role {role!r} "
                    "(read, submit, worker or admin)",
                    field="TIERQ_API_TOKENS",
                ) from None
    return entries


class Authenticator:
    """Turns an ``Authorization`` value into a :class:`Principal` and checks permissions.

    Args:
        entries: the configured tokens; none at all means open mode.
        rate, burst: default per-token rate limit (requests/s, bucket size); rate 0 is no limit.
        clock: monotonic seconds (injected so tests need not sleep).
    """

    def __init__(
        self,
        entries: Iterable[TokenEntry] = (),
        *,
        rate: float = 0.0,
        burst: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._by_digest: dict[str, Principal] = {}
        names: set[str] = set()
        for entry in entries:
            if entry.name in names:
                raise InvalidRequestError(f"token name {entry.name!r} appears twice", field="name")
            names.add(entry.name)
            digest = entry.digest()
            if digest in self._by_digest:
                raise InvalidRequestError(
                    f"token {entry.name!r} has the same secret as another token", field="token"
                )
            self._by_digest[digest] = Principal(
                entry.name,
                entry.role,
                self._bucket(rate if entry.rate is None else entry.rate, entry.burst or burst),
            )
        self._anonymous = Principal(ANONYMOUS, Role.ADMIN, self._bucket(rate, burst))

    def _bucket(self, rate: float, burst: float) -> TokenBucket | None:
        if rate <= 0:
            return None
        return TokenBucket(rate, burst or 2 * rate, self._clock())

    @property
    def open(self) -> bool:
        """No tokens configured: every caller is an anonymous admin."""
        return not self._by_digest

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller named by an ``Authorization: Bearer <token>`` value."""
        if self.open:
            return self._anonymous
        if not authorization:
            raise UnauthenticatedError("missing bearer token (Authorization: Bearer <token>)")
        if len(authorization) > _MAX_HEADER:
            raise UnauthenticatedError("authorization value too long")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthenticatedError("authorization must be 'Bearer <token>'")
        principal = self._by_digest.get(_sha256(token.strip()))
        if principal is None:
            raise UnauthenticatedError("unknown or revoked token")
        return principal

    def authorize(self, who: Principal, permission: Permission) -> None:
        """Raise unless ``who`` may do ``permission`` now (role, then rate limit)."""
        if not who.can(permission):
            raise PermissionDeniedError(
                f"token {who.name!r} has role {who.role.value!r}, "
                f"which does not allow {permission.value!r}"
            )
        if who.bucket is not None:
            wait = who.bucket.take(self._clock())
            if wait is not None:
                raise RateLimitedError(
                    f"rate limit of token {who.name!r} exceeded ({who.bucket.rate:g} requests/s)",
                    retry_after=wait,
                )

    def check_bind(self, hosts: Iterable[str], *, insecure: bool) -> None:
        """Refuse to serve an open API beyond loopback unless ``insecure``; say what is open."""
        exposed = sorted({h for h in hosts if not is_loopback(h)})
        if not self.open:
            log.info("API auth: %d token(s) configured", len(self._by_digest))
            return
        if not exposed:
            log.warning(
                "API is OPEN: no tokens configured, so every caller is admin; "
                "listening on loopback only"
            )
            return
        if not insecure:
            raise InvalidRequestError(
                f"refusing to serve without tokens on non-loopback address(es) "
                f"{', '.join(exposed)}: configure tokens (--tokens-file or TIERQ_API_TOKENS) "
                "or pass --insecure",
                field="host",
            )
        log.warning(
            "API is OPEN on %s with --insecure: anyone who can reach it is admin",
            ", ".join(exposed),
        )


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; anything else (even a name) is exposed."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def env_tokens() -> str | None:
    return os.environ.get("TIERQ_API_TOKENS")


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
