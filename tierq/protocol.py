"""Messages between tierq processes: requests, replies and their envelope.

Every request and reply is a versioned msgspec Struct encoded as MessagePack. A reply starts
with one tag byte: ``0`` then the reply struct, or ``1`` then an :class:`~tierq.errors.ErrorInfo`
that the caller turns back into the matching exception. Subjects are built by
``tierq.engine.subjects``; this module only says what travels on them.

Who talks to whom::

    client / API  --master.submit|submit_workflow|cancel|...|query|wait-->  master
    region        --master.register|lease|report|heartbeat----------------> master
    worker        --region.<name>.register|pull|report|heartbeat----------> region
    API / CLI     --autoscale.<region>.status---------------------------> autoscaler
"""

from __future__ import annotations

import enum
from typing import Any, Final, TypeVar

import msgspec

from .core import (
    RegionView,
    SchedulerStatistics,
    ScheduleSpec,
    Settings,
    WorkflowSummary,
    WorkflowView,
)
from .core.model import (
    LeasedTask,
    Outcome,
    Progress,
    RegionInfo,
    Started,
    Task,
    TaskSpec,
    WorkflowSpec,
)
from .core.settings import AdmissionSettings
from .errors import ErrorInfo, TierqError, error_from_wire

PROTOCOL_VERSION: Final = 1

_OK: Final = b"\x00"
_ERR: Final = b"\x01"

T = TypeVar("T")


class _Msg(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of every wire message."""


# --- client / API -> master -------------------------------------------------------------


class SubmitRequest(_Msg):
    tasks: list[TaskSpec]


class SubmitReply(_Msg):
    ids: list[str]
    #: Tasks that no live region can run now (no worker has registered their type there):
    #: accepted all the same, they wait until one does.
    warnings: list[str] = []


class IntakeEntry(_Msg):
    """One submission published to the durable intake (``<prefix>.intake``), under the task
    id the client made (``core.ids.client_id``); its ``Nats-Msg-Id`` header is that id."""

    id: str
    spec: TaskSpec


class AdmissionState(_Msg):
    """What the leader publishes on ``<prefix>.admission`` when its admission changes (and
    every second while it refuses anything): clients that submit through the durable intake
    refuse with BackpressureError before publishing, as the master would."""

    settings: AdmissionSettings
    waiting: int
    #: Waiting tasks of the queues at or above their soft watermark (others pass).
    queues: dict[str, int] = {}
    #: The last durable-intake entry these counts include: a client adds its own entries
    #: after it, which the master has not counted yet.
    intake_seq: int = 0


class IntakeId(_Msg):
    """The id alone, to name an entry whose spec cannot be decoded."""

    id: str


class ScheduleRequest(_Msg):
    """Every ``schedule_*`` operation: ``id`` names the schedule (not for list)."""

    id: str = ""
    #: create, update, declare: the spec.
    spec: ScheduleSpec | None = None
    #: pause: why.
    note: str | None = None
    #: update: refuse (ConflictError) unless the record's ``updated_at`` is still this.
    if_updated_at: float | None = None
    #: backfill: the range of fire times, epoch seconds, both ends included.
    start: float | None = None
    end: float | None = None
    #: backfill: also the fire times whose run was started before.
    rerun: bool = False
    #: list: schedules after this id (the previous page's ``next_cursor``), at most ``limit``.
    cursor: str | None = None
    limit: int = 200


class ScheduleRunView(_Msg, omit_defaults=False):
    """One fire of a schedule and the state of its run now (None: evicted or no run)."""

    fire_time: float
    at: float
    kind: str
    outcome: str
    task_id: str | None = None
    workflow_id: str | None = None
    reason: str | None = None
    state: str | None = None


class ScheduleView(_Msg, omit_defaults=False):
    id: str
    spec: ScheduleSpec
    created_at: float
    updated_at: float
    source: str = "api"
    paused: bool = False
    note: str | None = None
    next_fire: float | None = None
    last_fire: float | None = None
    buffered: float | None = None
    fires: int = 0
    #: The newest runs, oldest first.
    recent: list[ScheduleRunView] = []
    #: Why its runs would wait now (no live worker runs a task of its target), else empty.
    warnings: list[str] = []


class ScheduleReply(_Msg):
    schedule: ScheduleView | None = None
    #: declare: created, same, or differs (then ``diff`` says how; nothing was changed).
    status: str | None = None
    diff: list[str] = []
    #: trigger, backfill: the runs started (task or workflow ids).
    runs: list[str] = []
    #: backfill: fire times left out because their run was started before.
    already_ran: list[float] = []


class SchedulesReply(_Msg, omit_defaults=False):
    """A page of schedules by id; ``next_cursor`` (None at the end) asks for the next."""

    schedules: list[ScheduleView]
    next_cursor: str | None = None


class SubmitWorkflowRequest(_Msg):
    workflow: WorkflowSpec


class SubmitWorkflowReply(_Msg):
    workflow_id: str
    ids: dict[str, str]
    #: As :attr:`SubmitReply.warnings`.
    warnings: list[str] = []


class TaskRef(_Msg):
    """Names one task (or, for workflow commands, one workflow)."""

    id: str


class ReprioritizeRequest(_Msg):
    id: str
    priority: int


class Ack(_Msg):
    """A command was committed; ``events`` is how many events it caused."""

    events: int = 0


class WaitRequest(_Msg):
    """Hold the reply until every listed task is terminal or ``timeout`` seconds pass."""

    ids: list[str]
    timeout: float = 30.0


class TasksReply(_Msg):
    tasks: list[Task]
    next_cursor: str | None = None


class QueryKind(enum.Enum):
    TASK = "task"
    TASKS = "tasks"
    WORKFLOW = "workflow"
    WORKFLOWS = "workflows"
    REGIONS = "regions"
    WORKERS = "workers"
    STATS = "stats"
    SETTINGS = "settings"
    ADMISSION = "admission"


class QueryRequest(_Msg):
    kind: QueryKind
    id: str | None = None
    state: str | None = None
    name: str | None = None
    queue: str | None = None
    region: str | None = None
    workflow_id: str | None = None
    limit: int = 100
    cursor: str | None = None
    #: Nodes per page of a workflow query (at most, and by default, MAX_WORKFLOW_PAGE).
    node_limit: int | None = None
    #: Task lists: newest first (the cursor then pages towards older tasks).
    newest_first: bool = False


#: Most nodes one workflow reply carries: keeps a reply well under the message size limit.
MAX_WORKFLOW_PAGE = 10_000


class WorkflowsReply(_Msg):
    workflows: list[WorkflowSummary]
    next_cursor: str | None = None


class WorkflowReply(_Msg):
    workflow: WorkflowView


class RegionsReply(_Msg):
    regions: list[RegionView]


class LatencySummary(_Msg):
    """Submit-to-start latency of recent first attempts, in milliseconds."""

    samples: int
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None


class RateSecond(_Msg):
    """The events of one whole second (epoch ``at``) by kind."""

    at: int
    counts: dict[str, int] = {}


class StatsView(SchedulerStatistics, frozen=True, kw_only=True):
    """The scheduler's statistics plus the master's live figures."""

    #: Events per second by kind (task_submitted, task_started, task_succeeded, …) over the
    #: last minute.
    throughput: dict[str, float] = {}
    latency: LatencySummary | None = None
    #: Per task type, the submit-to-start latency of its first starts in the last 30 s (the
    #: autoscalers' ``target_latency`` reads the p50 of their pool's types).
    latency_by_name: dict[str, LatencySummary] = {}
    #: The same minute second by second, oldest first (what charts start from).
    history: list[RateSecond] = []


class StatsReply(_Msg):
    stats: StatsView


class SettingsReply(_Msg):
    settings: Settings


class SettingsRequest(_Msg):
    """Change the live settings: replace them (``settings``: the full Settings struct as
    msgpack), or apply ``patch`` to them (an RFC 7396 JSON merge patch as JSON text, applied
    by the master to the settings it holds, so the change is one and atomic)."""

    settings: msgspec.Raw = msgspec.Raw(b"\xc0")  # msgpack nil: not given
    patch: bytes | None = None


# --- region -> master ---------------------------------------------------------------------


class WorkerView(_Msg):
    """A worker as its region last saw it (soft state, for queries and the dashboard)."""

    id: str
    region: str
    task_types: list[str]
    concurrency: int
    running: int
    pool: str = "async"
    host: str = ""
    pid: int = 0
    last_heartbeat: float = 0.0
    draining: bool = False
    completed: int = 0
    failed: int = 0


class RegisterRegionRequest(_Msg):
    info: RegionInfo


class RegisterRegionReply(_Msg):
    lease_seconds: float


class LeaseRequest(_Msg):
    """A region asks for up to ``slots`` tasks; the master may hold it up to ``wait`` s."""

    region: str
    instance: str
    slots: int
    wait: float = 0.0
    #: Only tasks of these types (None: any type the region registered). A region asks for
    #: the types of the workers that have room, so a busy type cannot take an idle one's slots.
    task_types: list[str] | None = None


class LeaseReply(_Msg):
    tasks: list[LeasedTask]


class RegionReport(_Msg):
    """A batch of worker news from a region; also renews the region's lease."""

    region: str
    instance: str
    started: list[Started] = []
    progress: list[Progress] = []
    outcomes: list[Outcome] = []
    workers: list[WorkerView] | None = None
    task_types: list[str] | None = None
    #: Every attempt the region holds (queued or running), sent every few seconds so the
    #: master can re-queue assignments whose lease reply never arrived.
    held: list[tuple[str, int]] | None = None
    #: Outcomes of attempts the region does not hold (declared lost already, or never handed
    #: to that worker): (task id, attempt, outcome kind). Counted as duplicates, not applied.
    late: list[tuple[str, int, str]] = []


class RegionReportReply(_Msg):
    accepted: int = 0
    duplicates: int = 0
    #: Attempts the region holds that the master no longer wants run (cancelled, re-queued).
    cancel: list[tuple[str, int]] = []


class WorkersReply(_Msg):
    workers: list[WorkerView]


# --- worker -> region ---------------------------------------------------------------------


class RegisterWorkerRequest(_Msg):
    worker: str
    task_types: list[str]
    concurrency: int
    pool: str = "async"
    host: str = ""
    pid: int = 0
    #: An inbox subject the worker answers while its connection lives: a region probes a
    #: silent worker there, and "no responders" means it is gone.
    probe: str = ""
    #: The options each task declares in code, by name (only those that declare some).
    declared: dict[str, TaskSpec] = {}


class RegisterWorkerReply(_Msg):
    lease_seconds: float
    heartbeat_interval: float
    #: The region process that answered; a worker seeing another one re-registers.
    region_instance: str = ""


class RegionHello(_Msg):
    """Published by a region process when it starts (``region.<name>.hello``): workers of a
    previous instance register again and re-issue the pull the dead one held."""

    instance: str


class PullRequest(_Msg):
    worker: str
    slots: int
    wait: float = 5.0


class PullReply(_Msg):
    tasks: list[LeasedTask] = []
    #: The region wants this worker to stop pulling (drain requested).
    drain: bool = False


class WorkerHeartbeat(_Msg):
    worker: str
    running: list[tuple[str, int]] = []
    draining: bool = False


class WorkerHeartbeatReply(_Msg):
    #: Attempts to stop now (cancelled or reassigned).
    cancel: list[tuple[str, int]] = []
    #: The region does not know this worker (restarted): register again.
    unknown: bool = False
    drain: bool = False
    region_instance: str = ""


class WorkerReport(_Msg):
    worker: str
    started: list[Started] = []
    progress: list[Progress] = []
    outcomes: list[Outcome] = []


class DrainRequest(_Msg):
    """Ask a region to drain one worker (or all of them when ``worker`` is None)."""

    worker: str | None = None


# --- autoscaler -> API / CLI / event feed -------------------------------------------------


class AutoscaleDecision(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="autoscale_decision"
):
    """A change of a region's desired worker count, published as JSON on
    ``<prefix>.events.autoscale_decision`` (the autoscaler's event, not a log event)."""

    at: float
    region: str
    provider: str
    previous: int
    desired: int
    #: "up" or "down".
    direction: str
    reason: str
    #: Live workers (not draining) when it was decided.
    actual: int


class AutoscaleStatus(_Msg):
    """What an autoscaler answers on ``<prefix>.autoscale.<region>.status`` (every one of
    the region's autoscalers answers: ask with ``Engine.gather``)."""

    region: str
    provider: str
    task_types: list[str]
    #: The count the policy last decided.
    desired: int
    #: Live workers that are not draining (started and registered or starting).
    actual: int
    #: Started, not yet registered with the region.
    starting: int = 0
    #: Told to drain, not yet gone.
    draining: int = 0
    min_workers: int = 0
    max_workers: int = 0
    #: The latest reasoning, also when it held the count.
    reason: str = ""
    #: Wall time of the last completed check, and how often it checks.
    checked_at: float = 0.0
    interval: float = 1.0
    #: The last check's error (the master unreachable...), None when it went through.
    error: str | None = None
    #: Workers that ended without being told to, and were replaced.
    restarts: int = 0
    #: The latest workers that ended: (worker id, exit code; None when not its child).
    exits: list[tuple[str, int | None]] = []
    #: The latest changes, newest last.
    decisions: list[AutoscaleDecision] = []


class AutoscalersReply(_Msg):
    """The autoscalers that answered, one per region (``GET /v1/autoscalers``)."""

    autoscalers: list[AutoscaleStatus]


#: The kind of an :class:`AutoscaleDecision` on the events subjects (not a log event).
AUTOSCALE_DECISION_KIND: Final = "autoscale_decision"


# --- envelope -----------------------------------------------------------------------------

_encoder = msgspec.msgpack.Encoder()
_error_decoder = msgspec.msgpack.Decoder(ErrorInfo)
_decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}


def encode(msg: object) -> bytes:
    return _encoder.encode(msg)


def decode(data: bytes, typ: type[T]) -> T:
    """Decode a request body; malformed input becomes InvalidRequestError naming the path."""
    from .errors import InvalidRequestError

    dec = _decoders.get(typ)
    if dec is None:
        dec = _decoders[typ] = msgspec.msgpack.Decoder(typ)
    try:
        return dec.decode(data)  # type: ignore[no-any-return]
    except msgspec.ValidationError as exc:
        raise InvalidRequestError(f"invalid request: {exc}", field=_path_of(exc)) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"malformed request: {exc}") from None


def encode_ok(reply: object) -> bytes:
    return _OK + _encoder.encode(reply)


def encode_error(exc: TierqError | ErrorInfo) -> bytes:
    info = exc if isinstance(exc, ErrorInfo) else exc.to_info()
    return _ERR + _encoder.encode(info)


def decode_reply(data: bytes, typ: type[T]) -> T:
    """Return the reply struct, or raise the exception the remote side reported."""
    if data[:1] == _ERR:
        raise error_from_wire(_error_decoder.decode(data[1:]))
    if data[:1] != _OK:
        raise TierqError(f"unexpected reply ({len(data)} bytes, tag {data[:1]!r})")
    return decode(data[1:], typ)


def _path_of(exc: msgspec.ValidationError) -> str | None:
    text = str(exc)
    marker = " - at `"
    if marker in text:
        return text.split(marker, 1)[1].rstrip("`")
    return None
