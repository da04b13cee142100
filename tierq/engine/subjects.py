"""Every NATS subject, stream and bucket name tierq uses, under one configurable prefix."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.validate import check_subject_token as validate_token
from ..errors import InvalidRequestError

__all__ = ["MASTER_OPS", "REGION_OPS", "SCHEDULE_OPS", "TRUSTED_OPS", "Subjects", "validate_token"]

#: The master's schedule operations (tierq/master/schedule_ops.py): clients and the API may
#: call all of them.
SCHEDULE_OPS: tuple[str, ...] = (
    "schedule_create",
    "schedule_declare",
    "schedule_update",
    "schedule_delete",
    "schedule_pause",
    "schedule_resume",
    "schedule_trigger",
    "schedule_backfill",
    "schedule_get",
    "schedule_list",
)

#: Request subjects the active master answers (``{prefix}.master.{op}``).
MASTER_OPS = frozenset(
    {
        "submit",
        "submit_workflow",
        "lease",
        "report",
        "register",
        "heartbeat",
        "cancel",
        "cancel_workflow",
        "reprioritize",
        "retry",
        "query",
        "wait",
        "settings",
        *SCHEDULE_OPS,
    }
)

#: Request subjects a region answers (``{prefix}.region.{region}.{op}``).
REGION_OPS = frozenset({"pull", "report", "heartbeat", "register", "control", "hello"})

#: The worker operations a region also answers on its *trusted* subjects
#: (``{prefix}.region.{region}.trusted.{op}``), which only the API's NATS user may publish to:
#: a worker registered there (the API's in-process ``shell`` runner) is the only one that may
#: serve reserved task types, and nobody else may act under its id.
TRUSTED_OPS = frozenset({"register", "pull", "heartbeat", "report"})


@dataclass(frozen=True, slots=True)
class Subjects:
    """Names of every subject, stream and bucket for one tierq installation.

    Two installations can share a NATS account by using different prefixes. Stream names
    uppercase the prefix, so prefixes that differ only in case share a log: don't.
    """

    prefix: str = "tierq"

    def __post_init__(self) -> None:
        validate_token(self.prefix, "prefix")

    # -- request/reply ---------------------------------------------------------------------

    def master(self, op: str) -> str:
        """Subject of one master operation, e.g. ``tierq.master.submit``."""
        if op not in MASTER_OPS:
            raise InvalidRequestError(f"unknown master operation {op!r}", field="op")
        return f"{self.prefix}.master.{op}"

    @property
    def master_all(self) -> str:
        """Wildcard over every master operation (for one subscription serving all)."""
        return f"{self.prefix}.master.*"

    def region(self, name: str, op: str) -> str:
        """Subject of one operation of one region, e.g. ``tierq.region.eu.pull``."""
        validate_token(name, "region")
        if op not in REGION_OPS:
            raise InvalidRequestError(f"unknown region operation {op!r}", field="op")
        return f"{self.prefix}.region.{name}.{op}"

    def region_trusted(self, name: str, op: str) -> str:
        """Subject of one trusted worker operation, e.g. ``tierq.region.eu.trusted.pull``."""
        validate_token(name, "region")
        if op not in TRUSTED_OPS:
            raise InvalidRequestError(f"unknown trusted operation {op!r}", field="op")
        return f"{self.prefix}.region.{name}.trusted.{op}"

    def region_all(self, name: str) -> str:
        """Wildcard over every operation of one region."""
        validate_token(name, "region")
        return f"{self.prefix}.region.{name}.*"

    def autoscale_status(self, region: str) -> str:
        """Where the autoscaler of ``region`` answers status requests."""
        validate_token(region, "region")
        return f"{self.prefix}.autoscale.{region}.status"

    # -- lifecycle events (core NATS, fire and forget) -------------------------------------

    def event(self, kind: str) -> str:
        """Subject of one kind of lifecycle event, e.g. ``tierq.events.succeeded``."""
        validate_token(kind, "event kind")
        return f"{self.prefix}.events.{kind}"

    @property
    def events_all(self) -> str:
        """Wildcard a subscriber uses to see every lifecycle event."""
        return f"{self.prefix}.events.>"

    @property
    def admission(self) -> str:
        """Where the leader publishes its admission state (``protocol.AdmissionState``)."""
        return f"{self.prefix}.admission"

    # -- JetStream -------------------------------------------------------------------------

    @property
    def log_stream(self) -> str:
        """The master's durable log stream, e.g. ``TIERQ_LOG``."""
        return f"{self.prefix.upper()}_LOG"

    @property
    def log_subject(self) -> str:
        """The one subject of the log stream."""
        return f"{self.prefix}.log"

    @property
    def intake_stream(self) -> str:
        """The durable intake clients publish submissions to, e.g. ``TIERQ_INTAKE``."""
        return f"{self.prefix.upper()}_INTAKE"

    @property
    def intake_subject(self) -> str:
        """The one subject of the intake stream."""
        return f"{self.prefix}.intake"

    @property
    def leader_bucket(self) -> str:
        """KV bucket holding the leader lease (its TTL is the lease duration)."""
        return f"{self.prefix}_leader"

    @property
    def snapshot_bucket(self) -> str:
        """Object store holding scheduler snapshots."""
        return f"{self.prefix}_snapshots"

    @property
    def settings_bucket(self) -> str:
        """KV bucket holding runtime settings changed through the API."""
        return f"{self.prefix}_settings"
