"""The one service layer under REST and gRPC: authorise, check, call the master or a region.

Transports parse their wire format into the structs of ``schema.py``, name the caller
(:class:`Caller`) and call one method here; they never decide anything. Every method is an
*operation*: it checks the caller's role and rate limit, is timed and counted in the metrics,
and raises only :class:`~tierq.errors.TierqError` subclasses, which ``errors.py`` maps to a
status on either transport. The API keeps no state of its own, so any number of copies can
run side by side.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from typing import TypeVar

import msgspec

from ..core.model import Task, TaskSpec, TaskState
from ..core.records import WorkflowView
from ..core.settings import Settings
from ..core.validate import check_json, check_task_name, check_text
from ..engine import Engine, Subjects
from ..errors import (
    EngineUnavailableError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    TierqError,
)
from ..protocol import (
    MAX_WORKFLOW_PAGE,
    Ack,
    AutoscalersReply,
    AutoscaleStatus,
    PullReply,
    PullRequest,
    QueryKind,
    QueryRequest,
    RegionsReply,
    RegisterWorkerReply,
    RegisterWorkerRequest,
    SettingsReply,
    StatsReply,
    StatsView,
    SubmitReply,
    SubmitRequest,
    SubmitWorkflowRequest,
    TasksReply,
    WorkerHeartbeat,
    WorkerHeartbeatReply,
    WorkerReport,
    WorkersReply,
    WorkflowsReply,
    decode_reply,
    encode,
)
from ..rpc import MasterClient, region_autoscalers
from .auth import Authenticator, Permission
from .config import ApiConfig
from .feed import EventFeed, EventFilter, Watch
from .metrics import ApiMetrics
from .operation import Caller, operation
from .schema import (
    AttemptOut,
    BatchIn,
    BatchOut,
    CommandOut,
    HeartbeatIn,
    HeartbeatOut,
    LeaseIn,
    LeaseOut,
    PriorityPatch,
    RegisterWorkerIn,
    RegisterWorkerOut,
    ReportIn,
    ReportOut,
    SubmitOut,
    TaskQuery,
    TaskSpecIn,
    WaitIn,
    WorkflowIn,
    WorkflowOut,
)
from .settings_body import parse_settings, parse_settings_patch
from .shell import (
    SHELL_TASK,
    EventRedactor,
    ScheduleIn,
    ScheduleOut,
    ShellStatus,
    check_shell_spec,
    is_shell,
    redact,
    redact_status,
    shell_key,
    sign,
    spec_for,
    status_of,
)

__all__ = ["SHELL_TASK", "ApiService", "Caller", "TaskQuery"]

#: Bytes kept free in a NATS message for the envelope around a submission.
_ENVELOPE_SLACK = 4096
_MAX_PAGE = 1000
#: Structural bounds of JSON values checked here; the master applies the live (tighter) ones.
_MAX_DEPTH = 1000
_MAX_BYTES = 64 << 20

R = TypeVar("R")


class ApiService:
    """Every API operation, transport-free. Create one per process and share it."""

    def __init__(
        self,
        engine: Engine,
        config: ApiConfig,
        auth: Authenticator,
        metrics: ApiMetrics | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.auth = auth
        self.metrics = metrics or ApiMetrics()
        self.subjects = Subjects(config.nats.prefix)
        self.master = MasterClient(engine, self.subjects, timeout=config.request_timeout)
        self.feed = EventFeed(engine, self.subjects)
        self.shell_key = shell_key(config.shell_key or config.nats.password)
        self.redactor = EventRedactor(self.master)
        self._watches: set[Watch] = set()
        #: Health checks, scrapes and region look-ups give the master less time than a call.
        self._probe_timeout = min(2.0, config.request_timeout)

    # -- submissions ---------------------------------------------------------------------

    @operation(Permission.SUBMIT)
    async def submit_task(self, caller: Caller, spec: TaskSpecIn) -> SubmitOut:
        reply = await self._submit(caller, [spec])
        return SubmitOut(id=reply.ids[0], warnings=reply.warnings)

    @operation(Permission.SUBMIT)
    async def submit_tasks(self, caller: Caller, batch: BatchIn) -> BatchOut:
        if len(batch.tasks) > self.config.max_batch:
            raise InvalidRequestError(
                f"a batch holds at most {self.config.max_batch} tasks, got {len(batch.tasks)}",
                field="tasks",
            )
        reply = await self._submit(caller, batch.tasks, prefix="tasks")
        return BatchOut(ids=reply.ids, warnings=reply.warnings)

    async def _submit(
        self, caller: Caller, specs: list[TaskSpecIn], prefix: str | None = None
    ) -> SubmitReply:
        core = [self._check_spec(caller, s, _path(prefix, i)) for i, s in enumerate(specs)]
        self._check_size(SubmitRequest(tasks=core))
        try:
            reply = await self.master.submit_reply(core)
        except InvalidRequestError as exc:
            raise _rebase(exc, prefix) from None
        self.metrics.tasks_submitted.labels(caller.transport).inc(len(reply.ids))
        return reply

    @operation(Permission.SUBMIT)
    async def submit_workflow(self, caller: Caller, workflow: WorkflowIn) -> WorkflowOut:
        for i, node in enumerate(workflow.nodes):
            if self._check_spec(caller, node.spec, f"nodes[{i}].spec").name == SHELL_TASK:
                # A node's idempotency key does not stop a resubmission: no signature holds.
                raise InvalidRequestError(
                    f"nodes[{i}]: {SHELL_TASK!r} tasks cannot be part of a workflow",
                    field=f"nodes[{i}].spec.name",
                )
        spec = workflow.to_core()
        self._check_size(SubmitWorkflowRequest(workflow=spec))
        reply = await self.master.submit_workflow(spec)
        self.metrics.tasks_submitted.labels(caller.transport).inc(len(reply.ids))
        return WorkflowOut(workflow_id=reply.workflow_id, ids=reply.ids, warnings=reply.warnings)

    def check_spec(self, caller: Caller, spec: TaskSpecIn, field: str | None) -> TaskSpec:
        """A submitted spec as the core takes it, after the API's own rules (schedules)."""
        return self._check_spec(caller, spec, field)

    def check_size(self, request: object) -> None:
        """413 for a request that does not fit one NATS message (schedules)."""
        self._check_size(request)

    def _check_spec(self, caller: Caller, spec: TaskSpecIn, field: str | None) -> TaskSpec:
        """API-side rules on top of the schema: who may run shell, how far ahead."""
        if spec.name == SHELL_TASK and not caller.principal.can(Permission.ADMIN):
            raise PermissionDeniedError(f"submitting {SHELL_TASK!r} tasks needs the admin role")
        check_task_name(spec.name, _path(field, "name") or "name")
        core = spec.to_core()
        if core.name == SHELL_TASK:
            check_shell_spec(core, field)
            core = sign(core, self.shell_key)
        if core.args:
            check_json(core.args, _path(field, "args") or "args", _MAX_DEPTH, _MAX_BYTES)
        if core.kwargs:
            check_json(core.kwargs, _path(field, "kwargs") or "kwargs", _MAX_DEPTH, _MAX_BYTES)
        horizon = time.time() + self.config.max_schedule_ahead
        if core.run_at is not None and core.run_at > horizon:
            raise InvalidRequestError(
                f"run_at is more than {self.config.max_schedule_ahead:.0f} s in the future",
                field=_path(field, "run_at"),
            )
        return core

    def _check_size(self, request: object) -> None:
        """A submission must fit one NATS message; say so with 413, not a transport error."""
        limit = self.engine.max_payload - _ENVELOPE_SLACK
        try:
            size = len(encode(request))
        except (OverflowError, TypeError, ValueError, RecursionError, msgspec.EncodeError) as exc:
            # The schema and check_json should have caught it; never let it become a 500.
            raise InvalidRequestError(
                f"the request holds a value that cannot be sent: {exc}"
            ) from None
        if size > limit:
            raise PayloadTooLargeError(
                f"the submission encodes to {size} bytes; one request may carry at most "
                f"{limit} bytes (split it into smaller batches)"
            )

    # -- reading -------------------------------------------------------------------------

    @operation(Permission.READ)
    async def get_task(self, caller: Caller, task_id: str) -> Task:
        return self._visible(caller, [await self.master.get(task_id)])[0]

    @staticmethod
    def _visible(caller: Caller, tasks: list[Task]) -> list[Task]:
        """Shell commands and their output are for admins only."""
        return tasks if caller.principal.can(Permission.ADMIN) else [redact(t) for t in tasks]

    @operation(Permission.READ)
    async def list_tasks(self, caller: Caller, query: TaskQuery) -> TasksReply:
        if query.state is not None and query.state not in _STATES:
            raise InvalidRequestError(
                f"unknown state {query.state[:64]!r}; expected one of {', '.join(_STATES)}",
                field="state",
            )
        if not 1 <= query.limit <= _MAX_PAGE:
            raise InvalidRequestError(f"limit must be 1-{_MAX_PAGE}", field="limit")
        reply = await self.master.list_tasks(
            QueryRequest(
                kind=QueryKind.TASKS,
                state=query.state,
                name=query.name,
                queue=query.queue,
                region=query.region,
                workflow_id=query.workflow,
                limit=query.limit,
                cursor=query.cursor,
                newest_first=query.newest_first,
            )
        )
        return msgspec.structs.replace(reply, tasks=self._visible(caller, reply.tasks))

    @operation(Permission.READ)
    async def wait_tasks(self, caller: Caller, body: WaitIn) -> TasksReply:
        seconds = min(body.timeout, self.config.max_wait)
        tasks = await self.master.wait(list(dict.fromkeys(body.ids)), seconds)
        return TasksReply(tasks=self._visible(caller, tasks))

    @operation(Permission.READ)
    async def list_workflows(
        self,
        caller: Caller,
        state: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> WorkflowsReply:
        """Workflows newest first; ``state`` is running, succeeded, failed or cancelled."""
        if not 1 <= limit <= 1000:
            raise InvalidRequestError(f"limit must be in [1, 1000], got {limit}", field="limit")
        return await self.master.list_workflows(state=state, limit=limit, cursor=cursor)

    @operation(Permission.READ)
    async def get_workflow(
        self,
        caller: Caller,
        workflow_id: str,
        node_limit: int | None = None,
        cursor: str | None = None,
    ) -> WorkflowView:
        """One page of the workflow's nodes: ``node_limit`` (1..MAX_WORKFLOW_PAGE, that by
        default) from ``cursor``; counts and state always cover the whole workflow."""
        if node_limit is not None and not 1 <= node_limit <= MAX_WORKFLOW_PAGE:
            raise InvalidRequestError(
                f"node_limit must be in [1, {MAX_WORKFLOW_PAGE}], got {node_limit}",
                field="node_limit",
            )
        return await self.master.workflow(workflow_id, cursor=cursor, node_limit=node_limit)

    @operation(Permission.READ)
    async def regions(self, caller: Caller) -> RegionsReply:
        return await self.master.query(QueryRequest(kind=QueryKind.REGIONS), RegionsReply)

    @operation(Permission.READ)
    async def workers(self, caller: Caller, region: str | None = None) -> WorkersReply:
        query = QueryRequest(kind=QueryKind.WORKERS, region=region)
        return await self.master.query(query, WorkersReply)

    @operation(Permission.READ)
    async def autoscalers(self, caller: Caller) -> AutoscalersReply:
        """Every autoscaler of the registered regions (a region may have several pools)."""
        regions = await self.master.query(QueryRequest(kind=QueryKind.REGIONS), RegionsReply)
        found = await asyncio.gather(*(self._autoscalers(r.name) for r in regions.regions))
        return AutoscalersReply(autoscalers=[s for pools in found for s in pools])

    async def _autoscalers(self, region: str) -> list[AutoscaleStatus]:
        return await region_autoscalers(self.engine, self.subjects, region, self._probe_timeout)

    @operation(Permission.READ)
    async def stats(self, caller: Caller) -> StatsView:
        reply = await self.master.query(QueryRequest(kind=QueryKind.STATS), StatsReply)
        return reply.stats

    @operation(Permission.READ)
    async def get_settings(self, caller: Caller) -> Settings:
        return await self._settings()

    async def _settings(self, seconds: float | None = None) -> Settings:
        query = QueryRequest(kind=QueryKind.SETTINGS)
        reply = await self.master.call("query", query, SettingsReply, timeout=seconds)
        return reply.settings

    # -- commands ------------------------------------------------------------------------

    @operation(Permission.SUBMIT)
    async def update_task(self, caller: Caller, task_id: str, patch: PriorityPatch) -> CommandOut:
        await self._check_not_shell(caller, task_id, "reprioritising")
        ack = await self.master.reprioritize(task_id, patch.priority)
        return CommandOut(id=task_id, events=ack.events)

    @operation(Permission.SUBMIT)
    async def cancel_task(self, caller: Caller, task_id: str) -> CommandOut:
        return CommandOut(id=task_id, events=(await self.master.cancel(task_id)).events)

    @operation(Permission.SUBMIT)
    async def retry_task(self, caller: Caller, task_id: str) -> CommandOut:
        await self._check_not_shell(caller, task_id, "retrying")
        return CommandOut(id=task_id, events=(await self.master.retry(task_id)).events)

    @operation(Permission.SUBMIT)
    async def cancel_workflow(self, caller: Caller, workflow_id: str) -> CommandOut:
        ack = await self.master.cancel_workflow(workflow_id)
        return CommandOut(id=workflow_id, events=ack.events)

    async def _check_not_shell(self, caller: Caller, task_id: str, what: str) -> None:
        """Running a shell command again, or sooner, is running it: admins only."""
        if caller.principal.can(Permission.ADMIN):
            return
        if is_shell(await self.master.get(task_id)):
            raise PermissionDeniedError(f"{what} a {SHELL_TASK!r} task needs the admin role")

    @operation(Permission.ADMIN)
    async def put_settings(self, caller: Caller, body: bytes) -> Settings:
        """Replace the live settings with a JSON document (validated here and by the master)."""
        settings = parse_settings(body)
        await self.master.put_settings(msgspec.msgpack.encode(settings))
        return await self._settings()

    @operation(Permission.ADMIN)
    async def patch_settings(self, caller: Caller, body: bytes) -> Settings:
        """Apply a JSON merge patch (RFC 7396) to the live settings, in the master, as one
        change: what the patch leaves out keeps its value, ``null`` returns a setting to its
        default; the result is checked as a whole document is."""
        await self.master.patch_settings(parse_settings_patch(body))
        return await self._settings()

    # -- event feed ----------------------------------------------------------------------

    @operation(Permission.READ)
    async def watch_events(
        self, caller: Caller, filt: EventFilter, after: int | None, last: int | None = None
    ) -> Watch:
        """An open watch; the caller must ``aclose`` it. Counted in the watcher gauge.
        ``last`` replays the stream's last events first (see ``EventFeed.watch``)."""
        if filt.workflow_id is not None:
            # Seed the workflow's task ids: events about its tasks do not name the workflow.
            try:
                view = await self.master.workflow_all(filt.workflow_id)
                filt.workflow_tasks.update(node.task_id for node in view.nodes)
            except NotFoundError:
                pass  # not submitted yet: its task_submitted events will name it
        holder: list[Watch] = []

        def closed() -> None:
            self.metrics.watchers.dec()
            self._watches.difference_update(holder)

        watch = await self.feed.watch(filt, after, on_close=closed, last=last)
        holder.append(watch)
        self._watches.add(watch)
        self.metrics.watchers.inc()
        return watch

    # -- pull over the API (workers in any language) -------------------------------------

    @operation(Permission.WORK)
    async def register_worker(
        self, caller: Caller, region: str, body: RegisterWorkerIn
    ) -> RegisterWorkerOut:
        worker = body.worker or caller.principal.new_worker_id()
        caller.principal.check_worker(worker)
        # The region passes task types on to the master, which refuses unprintable names;
        # refuse them here, where the worker can be told which one.
        for i, name in enumerate(body.task_types):
            check_task_name(name, f"task_types[{i}]")
            if name == SHELL_TASK:
                # Only the API's own runner runs commands; a worker serving "shell" would
                # receive admins' command lines and could report any outcome for them.
                raise PermissionDeniedError(
                    f"task_types[{i}]: {SHELL_TASK!r} is served by the API's built-in runner only"
                )
        if body.host:
            check_text(body.host, "host", 256)
        request = RegisterWorkerRequest(
            worker=worker,
            task_types=list(body.task_types),
            concurrency=body.concurrency,
            pool="api",
            host=body.host,
        )
        reply = await self._region(region, "register", request, RegisterWorkerReply)
        return RegisterWorkerOut(
            worker=worker,
            region=region,
            lease_seconds=reply.lease_seconds,
            heartbeat_interval=reply.heartbeat_interval,
        )

    @operation(Permission.WORK)
    async def lease(self, caller: Caller, region: str, worker: str, body: LeaseIn) -> LeaseOut:
        caller.principal.check_worker(worker)
        wait = min(body.wait, self.config.max_pull_wait)
        request = PullRequest(worker=worker, slots=body.slots, wait=wait)
        reply = await self._region(
            region, "pull", request, PullReply, seconds=wait + self.config.request_timeout
        )
        return LeaseOut(tasks=reply.tasks, drain=reply.drain)

    @operation(Permission.WORK)
    async def heartbeat(
        self, caller: Caller, region: str, worker: str, body: HeartbeatIn
    ) -> HeartbeatOut:
        caller.principal.check_worker(worker)
        request = WorkerHeartbeat(
            worker=worker,
            running=[(r.task_id, r.attempt) for r in body.running],
            draining=body.draining,
        )
        reply = await self._region(region, "heartbeat", request, WorkerHeartbeatReply)
        cancel = [AttemptOut(task_id=t, attempt=a) for t, a in reply.cancel]
        return HeartbeatOut(cancel=cancel, unknown=reply.unknown, drain=reply.drain)

    @operation(Permission.WORK)
    async def report(self, caller: Caller, region: str, worker: str, body: ReportIn) -> ReportOut:
        caller.principal.check_worker(worker)
        for i, outcome in enumerate(body.outcomes):
            if outcome.result is not None:
                check_json(outcome.result, f"outcomes[{i}].result", _MAX_DEPTH, _MAX_BYTES)
        started, progress, outcomes = body.to_core(worker)
        request = WorkerReport(worker=worker, started=started, progress=progress, outcomes=outcomes)
        self._check_size(request)
        await self._region(region, "report", request, Ack)
        return ReportOut(accepted=len(started) + len(progress) + len(outcomes))

    async def _region(
        self,
        region: str,
        op: str,
        request: object,
        reply_type: type[R],
        seconds: float | None = None,
    ) -> R:
        subject = self.subjects.region(region, op)  # refuses names that are not one token
        try:
            data = await self.engine.request(
                subject, encode(request), timeout=seconds or self.config.request_timeout
            )
        except EngineUnavailableError:
            await self._check_region_known(region)
            raise
        return decode_reply(data, reply_type)

    async def _check_region_known(self, region: str) -> None:
        """NATS cannot tell a region that is down from one that never was; the master can."""
        query = QueryRequest(kind=QueryKind.REGIONS)
        try:
            reply = await self.master.call(
                "query", query, RegionsReply, timeout=self._probe_timeout
            )
        except TierqError:
            return  # the master does not answer either: the original error stands
        if all(r.name != region for r in reply.regions):
            raise NotFoundError(f"no region {region!r} is registered", ids=(region,))

    # -- seed compatibility: the shell task type -----------------------------------------

    @operation(Permission.ADMIN)
    async def schedule_shell(self, caller: Caller, body: ScheduleIn) -> ScheduleOut:
        self._require_shell()
        spec = sign(spec_for(body), self.shell_key)
        self._check_size(SubmitRequest(tasks=[spec]))
        ids = await self.master.submit([spec])
        self.metrics.tasks_submitted.labels(caller.transport).inc()
        return ScheduleOut(task_id=ids[0], scheduled_at=spec.run_at)

    @operation(Permission.READ)
    async def shell_status(self, caller: Caller, task_id: str) -> ShellStatus:
        self._require_shell()
        task = await self.master.get(task_id)
        if task.spec.name != SHELL_TASK:
            # Same answer as an unknown id: /status/ only knows scheduled commands.
            raise NotFoundError(f"no scheduled command {task_id!r}", ids=(task_id,))
        status = status_of(task)
        return status if caller.principal.can(Permission.ADMIN) else redact_status(status)

    def _require_shell(self) -> None:
        if not self.config.enable_shell:
            raise NotFoundError(
                "the shell task type is disabled; start the API with --enable-shell"
            )

    # -- operations ------------------------------------------------------------------------

    @operation(Permission.READ)
    async def metrics_text(self, caller: Caller) -> bytes:
        """Prometheus text: the API's own metrics and the scheduler's current figures."""
        self.metrics.update_scheduler(await self.scheduler_stats())
        return self.metrics.render()

    async def close(self) -> None:
        """End every open event watch (server shutdown: SSE and gRPC streams finish)."""
        for watch in list(self._watches):
            await watch.aclose()

    # -- health --------------------------------------------------------------------------

    async def ready(self) -> bool:
        """True when NATS is connected and the master answers."""
        if not self.engine.is_connected:
            return False
        try:
            await self._settings(seconds=self._probe_timeout)
        except TierqError:
            return False
        return True

    async def scheduler_stats(self) -> Mapping[str, object] | None:
        """The master's statistics for ``/metrics``, or None when it does not answer."""
        query = QueryRequest(kind=QueryKind.STATS)
        try:
            reply = await self.master.call("query", query, StatsReply, timeout=self._probe_timeout)
        except TierqError:
            return None
        stats: dict[str, object] = msgspec.to_builtins(reply.stats)
        return stats


_STATES = tuple(s.value for s in TaskState)


def _path(prefix: str | None, item: int | str) -> str | None:
    if prefix is None:
        return None if isinstance(item, int) else item
    return f"{prefix}[{item}]" if isinstance(item, int) else f"{prefix}.{item}"


_SPECS = re.compile(r"^specs\[(\d+)\]\.?")


def _rebase(exc: InvalidRequestError, prefix: str | None) -> InvalidRequestError:
    """Name the field as the client sent it: the master's ``specs[3].x`` is ``tasks[3].x`` in
    a batch and plain ``x`` for a single task."""

    def fix(text: str) -> str:
        def sub(m: re.Match[str]) -> str:
            return f"{prefix}[{m.group(1)}]." if prefix else ""

        return _SPECS.sub(sub, text, count=1).rstrip(".")

    if exc.field is None or not _SPECS.match(exc.field):
        return exc
    rebased = type(exc)(fix(exc.message), field=fix(exc.field) or None, ids=exc.ids)
    return rebased
