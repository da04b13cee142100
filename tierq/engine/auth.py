"""NATS users per role and their subject permissions: least privilege on the bus.

The API's tokens guard only the front door; whoever can publish on the bus could otherwise
cancel tasks, forge reports or answer requests in the master's place. So every process
connects as the user of its role, and the server lets each role use only its own subjects:

- ``master``: serves ``<p>.master.*`` (the only role that may subscribe there, alone or in
  a queue group, so no one else can answer in its place), publishes events, and owns the
  JetStream log and intake, the leader and settings KV buckets, the snapshot store and the
  events stream.
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
  reprioritize operations, publishing submissions to the durable intake (the API too), and
  the autoscalers' status; no settings, no region subjects, no other JetStream use.
- ``operator`` (``tierq settings``): what a client may, plus the master's ``settings``
  (changing the live settings); the API's admin tokens are the same right at the front door.
- ``autoscaler``: the master's ``query`` (read-only: figures, workers, settings), publishes
  its scaling decisions on ``<p>.events.autoscale_decision`` and answers status requests on
  ``<p>.autoscale.*.status``.
- ``leaf`` (one user per region ``r``): not a process but the link of a leaf node that serves
  region ``r`` (its region and workers connect to the leaf). nats-server lets a leaf link carry
  what its user may publish from the leaf into the hub and what it may subscribe to from the
  hub into the leaf, so this user is allowed exactly what region ``r``'s region and worker
  users are together: whatever else runs on that leaf server reaches nothing of tierq's on
  the hub. :func:`leaf_config` prints the leaf server's side.

Replies travel on each user's own inbox prefix ``_INBOX.<user>``, so no role can read the
answers meant for another. The credentials of one installation are kept in a JSON file
(mode 0600) that ``tierq dev`` generates and every ``tierq`` command can read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..credentials import ROLES, NatsUsers
from ..errors import InvalidRequestError
from .subjects import SCHEDULE_OPS, Subjects

__all__ = [
    "Permissions",
    "authorization_config",
    "inbox_prefix",
    "leaf_config",
    "permissions",
]

#: Master operations of the API and of clients (never register/lease/report/heartbeat).
_CLIENT_OPS: tuple[str, ...] = ("submit", "submit_workflow", "query", "wait", "cancel")
_CLIENT_OPS += ("cancel_workflow", "retry", "reprioritize", *SCHEDULE_OPS)
_API_MASTER_OPS = (*_CLIENT_OPS, "settings")
#: The operator's: a client's, and changing the settings.
_OPERATOR_MASTER_OPS = _API_MASTER_OPS
_REGION_MASTER_OPS = ("register", "lease", "report")
_WORKER_REGION_OPS = ("register", "pull", "heartbeat", "report")


def inbox_prefix(user: str) -> str:
    """Where ``user`` receives replies: its permissions allow subscribing only below this."""
    return f"_INBOX.{user}"


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
        s.intake_stream,
        f"{p.upper()}_EVENTS",
        f"KV_{s.leader_bucket}",
        f"KV_{s.settings_bucket}",
        f"OBJ_{s.snapshot_bucket}",
    ]
    publish = [
        s.log_subject,
        f"{p}.events.>",
        s.admission,
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
            # A worker declares its apps' schedules (new ones only: stored ones stay).
            (*(s.region(region, op) for op in _WORKER_REGION_OPS), s.master("schedule_declare")),
            (inbox, s.region(region, "hello")),
        )
    if role == "api":
        events = f"{p.upper()}_EVENTS"
        publish = [s.master(op) for op in _API_MASTER_OPS]
        publish.append(s.intake_subject)
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
        publish.append(f"{p}.autoscale.*.status")
        subscribe = (s.events_all, s.admission, f"{p}.region.*.hello", inbox)
        return Permissions(tuple(publish), subscribe)
    if role in ("client", "operator"):
        allowed = _CLIENT_OPS if role == "client" else _OPERATOR_MASTER_OPS
        ops = tuple(s.master(op) for op in allowed)
        return Permissions(
            (*ops, s.intake_subject, f"{p}.autoscale.*.status"), (inbox, s.admission)
        )
    if role == "leaf":
        assert region is not None
        parts = [
            permissions(r, subjects, f"{p}-{r}-{region}", region) for r in ("region", "worker")
        ]
        return Permissions(
            tuple(dict.fromkeys(x for part in parts for x in part.publish)),
            tuple(dict.fromkeys(x for part in parts for x in part.subscribe)),
            allow_responses=True,
        )
    if role == "autoscaler":
        return Permissions(
            (s.master("query"), s.event("autoscale_decision")),
            (f"{p}.autoscale.*.status", inbox),
            allow_responses=True,
        )
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


def leaf_config(users: NatsUsers, region: str, hub: str, *, indent: str = "") -> str:
    """The config of a leaf node serving ``region``: its local users (that region's region
    and worker users only) and its link to the hub (``nats-leaf://host:port``) as the
    region's ``leaf`` user, whose permissions on the hub bound what the link carries."""
    leaf = users.find("leaf", region)
    local = tuple(u for u in users.users if u.region == region and u.role in ("region", "worker"))
    if leaf is None or len(local) != 2:
        raise InvalidRequestError(
            f"the credentials have no region, worker and leaf users for region {region!r}",
            field="region",
        )
    scheme, sep, rest = hub.partition("://")
    if not sep or scheme not in ("nats-leaf", "tls") or not rest or "@" in rest:
        raise InvalidRequestError(
            f"the hub's leaf-node URL must look like nats-leaf://host:port, got {hub!r}",
            field="hub",
        )
    block = authorization_config(NatsUsers(prefix=users.prefix, users=local), indent=indent)
    url = f"{scheme}://{leaf.user}:{leaf.password}@{rest}"
    return f'{block}{indent}leafnodes {{\n{indent}  remotes: [ {{ url: "{url}" }} ]\n{indent}}}\n'
