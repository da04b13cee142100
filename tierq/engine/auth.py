"""NATS users per role and their subject permissions: least privilege on the bus.

The API's tokens guard only the front door; whoever can publish on the bus could otherwise
cancel tasks, forge reports or answer requests in the master's place. So every process
connects as the user of its role, and the server lets each role use only its own subjects:

- ``master``: serves ``<p>.master.*`` (the only role that may subscribe there, alone or in
  a queue group, so no one else can answer in its place), publishes events, and owns the
  JetStream log, the leader and settings KV buckets, the snapshot store and the events stream.
- ``region`` (one user per region ``r``): serves ``<p>.region.r.*`` and
  ``<p>.region.r.trusted.*``, hears task cancellations
  and calls the master's ``register``, ``lease`` and ``report`` only.
- ``worker`` (one user per region ``r``): calls ``<p>.region.r.{register,pull,heartbeat,report}``
  of its own region only.
- ``api``: the submit/query/control operations of the master (including ``settings``, which
  it guards with admin tokens), the worker and control operations of every region (it proxies
  gRPC workers), the *trusted* worker operations (only its in-process shell runner may serve
  ``shell``), and reads the events stream.
- ``client`` (the SDK and CLI): the master's submit, query, wait, cancel, retry and
  reprioritize operations; no settings, no region subjects, no JetStream.

Replies travel on each user's own inbox prefix ``_INBOX.<user>``, so no role can read the
answers meant for another. The credentials of one installation are kept in a JSON file
(mode 0600) that ``tierq dev`` generates and every ``tierq`` command can read.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from ..errors import InvalidRequestError
from .subjects import Subjects, validate_token

__all__ = [
    "ROLES",
    "NatsUser",
    "NatsUsers",
    "Permissions",
    "authorization_config",
    "inbox_prefix",
    "permissions",
]

#: Every role that connects to NATS.
ROLES = ("master", "region", "worker", "api", "client")
#: Roles whose users belong to one region.
_REGIONAL = frozenset({"region", "worker"})
#: What a user name may contain: it becomes one token of the user's inbox subjects.
_USER = re.compile(r"[A-Za-z0-9_-]{1,200}")
#: Passwords go between double quotes in the server's config: printable, no quote or escape.
_PASSWORD = re.compile(r"[!#-\[\]-~]{1,1000}")

#: Master operations of the API and of clients (never register/lease/report/heartbeat).
_CLIENT_OPS: tuple[str, ...] = ("submit", "submit_workflow", "query", "wait", "cancel")
_CLIENT_OPS += ("cancel_workflow", "retry", "reprioritize")
_API_MASTER_OPS = (*_CLIENT_OPS, "settings")
_REGION_MASTER_OPS = ("register", "lease", "report")
_WORKER_REGION_OPS = ("register", "pull", "heartbeat", "report")


def inbox_prefix(user: str) -> str:
    """Where ``user`` receives replies: its permissions allow subscribing only below this."""
    return f"_INBOX.{user}"


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
        if (self.role in _REGIONAL) != (self.region is not None):
            raise InvalidRequestError(
                f"NATS user {self.user!r}: region and worker users name their region, "
                "other roles do not",
                field="region",
            )
        if self.region is not None:
            validate_token(self.region, "region")

    def __repr__(self) -> str:
        return f"NatsUser(role={self.role!r}, user={self.user!r}, region={self.region!r})"


class NatsUsers(msgspec.Struct, frozen=True, kw_only=True):
    """The credentials of one installation: the file ``tierq dev`` writes (JSON, mode 0600)."""

    version: int = 1
    prefix: str = "tierq"
    users: tuple[NatsUser, ...] = ()

    def __post_init__(self) -> None:
        validate_token(self.prefix, "prefix")
        names = [u.user for u in self.users]
        if len(set(names)) != len(names):
            raise InvalidRequestError("the same NATS user name appears twice", field="users")

    def __repr__(self) -> str:
        return f"NatsUsers(prefix={self.prefix!r}, users={[u.user for u in self.users]!r})"

    @classmethod
    def generate(cls, prefix: str = "tierq", regions: Iterable[str] = ("default",)) -> NatsUsers:
        """Fresh random passwords (256 bits each) for every role, regions as listed."""
        validate_token(prefix, "prefix")
        users = [_new_user(prefix, role) for role in ("master", "api", "client")]
        for region in regions:
            users += [_new_user(prefix, "region", region), _new_user(prefix, "worker", region)]
        return cls(prefix=prefix, users=tuple(users))

    def find(self, role: str, region: str | None = None) -> NatsUser | None:
        """The user of ``role`` (and of ``region`` for region and worker users)."""
        for user in self.users:
            if user.role == role and (role not in _REGIONAL or user.region == region):
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


@dataclass(frozen=True, slots=True)
class Permissions:
    """What one user may publish and subscribe to (nats-server ``permissions``)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    #: May answer requests it received (the server allows one reply per request).
    allow_responses: bool = False


def _stream_api(stream: str) -> list[str]:
    """JetStream API subjects for managing and reading one stream (and its consumers)."""
    api = "$JS.API"
    return [
        f"{api}.STREAM.*.{stream}",
        f"{api}.STREAM.MSG.*.{stream}",
        f"{api}.DIRECT.GET.{stream}",
        f"{api}.DIRECT.GET.{stream}.>",
        f"{api}.CONSUMER.*.{stream}",
        f"{api}.CONSUMER.*.{stream}.>",
        f"{api}.CONSUMER.MSG.NEXT.{stream}.>",
        f"{api}.CONSUMER.DURABLE.CREATE.{stream}.>",
        f"$JS.ACK.{stream}.>",
        f"$JS.FC.{stream}.>",
    ]


def _master(s: Subjects, inbox: str) -> Permissions:
    p = s.prefix
    streams = [
        s.log_stream,
        f"{p.upper()}_EVENTS",
        f"KV_{s.leader_bucket}",
        f"KV_{s.settings_bucket}",
        f"OBJ_{s.snapshot_bucket}",
    ]
    publish = [
        s.log_subject,
        f"{p}.events.>",
        f"$KV.{s.leader_bucket}.>",
        f"$KV.{s.settings_bucket}.>",
        f"$O.{s.snapshot_bucket}.>",
        "$JS.API.INFO",
        "$JS.API.STREAM.NAMES",
        "$JS.API.STREAM.LIST",
    ]
    for stream in streams:
        publish += _stream_api(stream)
    return Permissions(tuple(publish), (s.master_all, inbox), allow_responses=True)


def permissions(role: str, subjects: Subjects, user: str, region: str | None = None) -> Permissions:
    """The permissions of ``user`` in ``role`` (``region`` for region and worker users)."""
    s, p = subjects, subjects.prefix
    inbox = f"{inbox_prefix(user)}.>"
    if role == "master":
        return _master(s, inbox)
    if role == "region":
        assert region is not None
        # It announces a restart to its workers (hello) and probes a silent worker on the
        # worker user's inbox, where "no responders" means the worker's connection is gone.
        workers_inbox = f"{inbox_prefix(f'{p}-worker-{region}')}.>"
        return Permissions(
            (
                *(s.master(op) for op in _REGION_MASTER_OPS),
                s.region(region, "hello"),
                workers_inbox,
            ),
            (
                s.region_all(region),
                f"{p}.region.{region}.trusted.*",
                s.event("task_cancelled"),
                inbox,
            ),
            allow_responses=True,
        )
    if role == "worker":
        assert region is not None
        return Permissions(
            tuple(s.region(region, op) for op in _WORKER_REGION_OPS),
            (inbox, s.region(region, "hello")),
        )
    if role == "api":
        events = f"{p.upper()}_EVENTS"
        publish = [s.master(op) for op in _API_MASTER_OPS]
        publish += [f"{p}.region.*.{op}" for op in (*_WORKER_REGION_OPS, "control")]
        # Only the API may use the trusted subjects: its in-process shell runner.
        publish += [f"{p}.region.*.trusted.{op}" for op in _WORKER_REGION_OPS]
        publish += [
            f"$JS.API.STREAM.INFO.{events}",
            f"$JS.API.STREAM.CREATE.{events}",
            f"$JS.API.CONSUMER.CREATE.{events}",
            f"$JS.API.CONSUMER.CREATE.{events}.>",
            f"$JS.API.CONSUMER.DELETE.{events}.>",
        ]
        return Permissions(tuple(publish), (s.events_all, f"{p}.region.*.hello", inbox))
    if role == "client":
        return Permissions(tuple(s.master(op) for op in _CLIENT_OPS), (inbox,))
    raise InvalidRequestError(f"role must be one of {', '.join(ROLES)}, got {role!r}", field="role")


def _strings(values: Iterable[str], indent: str) -> str:
    items = "".join(f'{indent}  "{v}"\n' for v in values)
    return f"[\n{items}{indent}]"


def authorization_config(users: NatsUsers, *, indent: str = "") -> str:
    """The nats-server ``authorization`` block for ``users``: one entry per user.

    Passwords are written as given (the file must be private); a deployment may replace
    them with bcrypt hashes from ``nats server passwd``.
    """
    subjects = Subjects(users.prefix)
    lines = [f"{indent}authorization {{", f"{indent}  users = ["]
    inner = indent + "      "
    for u in users.users:
        perms = permissions(u.role, subjects, u.user, u.region)
        lines += [
            f'{indent}    {{user: "{u.user}", password: "{u.password}", permissions: {{',
            f"{inner}publish: {{allow: {_strings(perms.publish, inner)}}}",
            f"{inner}subscribe: {{allow: {_strings(perms.subscribe, inner)}}}",
        ]
        if perms.allow_responses:
            lines.append(f"{inner}allow_responses: true")
        lines.append(f"{indent}    }}}}")
    lines += [f"{indent}  ]", f"{indent}}}"]
    return "\n".join(lines) + "\n"
