"""The credentials file of one installation: one NATS user (and password) per role.

``tierq dev`` generates it (JSON, mode 0600) and every ``tierq`` command can read it
(``NatsConfig(credentials=path).for_role(role, region)``); the engine turns it into the
server's authorization block (``tierq.engine.authorization_config``). It sits beside
``config``, below the engine, so that reading a config never loads the NATS client.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from collections.abc import Iterable
from pathlib import Path

import msgspec

from .core.validate import check_subject_token
from .errors import InvalidRequestError

__all__ = ["REGIONAL", "ROLES", "NatsUser", "NatsUsers"]

#: Every role that connects to NATS (``leaf``: a leaf node's link to the hub, one per region,
#: allowed what that region's region and worker users together are; see engine/auth.py).
ROLES = ("master", "region", "worker", "api", "client", "operator", "autoscaler", "leaf")
#: Roles whose users belong to one region.
REGIONAL = frozenset({"region", "worker", "leaf"})
#: What a user name may contain: it becomes one token of the user's inbox subjects.
_USER = re.compile(r"[A-Za-z0-9_-]{1,200}")
#: Passwords go between double quotes in the server's config: printable, no quote or escape.
_PASSWORD = re.compile(r"[!#-\[\]-~]{1,1000}")


class NatsUser(msgspec.Struct, frozen=True, kw_only=True):
    """One NATS user: its role, the region of a region or worker user, and its secret."""

    role: str
    user: str
    password: str
    region: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidRequestError(
                f"role must be one of {', '.join(ROLES)}, got {self.role!r}", field="role"
            )
        if _USER.fullmatch(self.user) is None:
            raise InvalidRequestError(
                f"NATS user names are 1-200 characters of A-Z, a-z, 0-9, '_' or '-', "
                f"got {self.user!r}",
                field="user",
            )
        if _PASSWORD.fullmatch(self.password) is None:
            # It is written into the server's config between double quotes.
            raise InvalidRequestError(
                f"NATS user {self.user!r}: the password must be 1-1000 printable characters "
                "without quotes, backslashes or spaces",
                field="password",
            )
        if (self.role in REGIONAL) != (self.region is not None):
            raise InvalidRequestError(
                f"NATS user {self.user!r}: region, worker and leaf users name their region, "
                "other roles do not",
                field="region",
            )
        if self.region is not None:
            check_subject_token(self.region, "region")

    def __repr__(self) -> str:
        return f"NatsUser(role={self.role!r}, user={self.user!r}, region={self.region!r})"


class NatsUsers(msgspec.Struct, frozen=True, kw_only=True):
    """The credentials of one installation: the file ``tierq dev`` writes (JSON, mode 0600)."""

    version: int = 1
    prefix: str = "tierq"
    users: tuple[NatsUser, ...] = ()

    def __post_init__(self) -> None:
        check_subject_token(self.prefix, "prefix")
        names = [u.user for u in self.users]
        if len(set(names)) != len(names):
            raise InvalidRequestError("the same NATS user name appears twice", field="users")

    def __repr__(self) -> str:
        return f"NatsUsers(prefix={self.prefix!r}, users={[u.user for u in self.users]!r})"

    @classmethod
    def generate(cls, prefix: str = "tierq", regions: Iterable[str] = ("default",)) -> NatsUsers:
        """Fresh random passwords (256 bits each) for every role, regions as listed."""
        check_subject_token(prefix, "prefix")
        global_roles = ("master", "api", "client", "operator", "autoscaler")
        users = [_new_user(prefix, role) for role in global_roles]
        for region in regions:
            users += [_new_user(prefix, role, region) for role in ("region", "worker", "leaf")]
        return cls(prefix=prefix, users=tuple(users))

    def complete(self) -> NatsUsers:
        """These users, plus a new one for each role that has none, and a leaf user for each
        region that has none (a file written by an older tierq, before the role existed)."""
        added = [
            _new_user(self.prefix, role)
            for role in ROLES
            if role not in REGIONAL and self.find(role) is None
        ]
        regions = sorted({u.region for u in self.users if u.region is not None})
        added += [
            _new_user(self.prefix, "leaf", region)
            for region in regions
            if self.find("leaf", region) is None
        ]
        if not added:
            return self
        return NatsUsers(version=self.version, prefix=self.prefix, users=(*self.users, *added))

    def find(self, role: str, region: str | None = None) -> NatsUser | None:
        """The user of ``role`` (and of ``region`` for region, worker and leaf users)."""
        for user in self.users:
            if user.role == role and (role not in REGIONAL or user.region == region):
                return user
        return None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NatsUsers:
        """Read a credentials file; missing or malformed: :class:`InvalidRequestError`."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise InvalidRequestError(
                f"cannot read the NATS credentials file {os.fspath(path)!r}: {exc.strerror}",
                field="nats_credentials",
            ) from exc
        try:
            return msgspec.json.decode(data, type=cls)
        except msgspec.ValidationError as exc:
            raise InvalidRequestError(
                f"the NATS credentials file {os.fspath(path)!r} is invalid: {exc}",
                field="nats_credentials",
            ) from exc
        except msgspec.DecodeError as exc:
            raise InvalidRequestError(
                f"the NATS credentials file {os.fspath(path)!r} is not JSON: {exc}",
                field="nats_credentials",
            ) from exc

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the file atomically with mode 0600 (it holds every role's password)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".credentials-", dir=target.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(msgspec.json.format(msgspec.json.encode(self)) + b"\n")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _new_user(prefix: str, role: str, region: str | None = None) -> NatsUser:
    name = f"{prefix}-{role}" if region is None else f"{prefix}-{role}-{region}"
    return NatsUser(role=role, user=name, password=secrets.token_urlsafe(32), region=region)
