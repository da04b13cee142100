"""Turns master requests into core commands: decode, call SchedulerState, build the reply.

Nothing here waits: a handler returns the events the command caused and the reply to send
once those events are durable. The service does the waiting (group commit) and the sending.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from ..core import Event, SchedulerState, Settings, TaskDuplicateReport
from ..core.model import TERMINAL_STATES, Task, TaskState
from ..core.reconcile import missing_attempts
from ..core.settings_doc import patch_settings
from ..errors import InvalidRequestError, NotFoundError
from ..protocol import (
    MAX_WORKFLOW_PAGE,
    Ack,
    AdmissionState,
    QueryKind,
    QueryRequest,
    RegionReport,
    RegionReportReply,
    RegionsReply,
    RegisterRegionReply,
    RegisterRegionRequest,
    ReprioritizeRequest,
    SettingsReply,
    SettingsRequest,
    StatsReply,
    StatsView,
    SubmitReply,
    SubmitRequest,
    SubmitWorkflowReply,
    SubmitWorkflowRequest,
    TaskRef,
    TasksReply,
    WorkersReply,
    WorkflowReply,
    WorkflowsReply,
    decode,
)
from ..protocol import WorkerView as WorkerView
from .metrics import LiveMetrics
from .schedule_ops import ScheduleHandlers

#: Queries never return more than this many tasks per page.
MAX_PAGE = 1000

#: An assignment a region does not report holding this long after it was made is lost.
LOST_REPLY_GRACE = 5.0


@dataclass(slots=True)
class Handled:
    """What a request produced: events to commit, then the reply to send."""

    events: list[Event]
    reply: object


class Handlers:
    """One method per master operation, each ``(payload, now) -> Handled``."""

    def __init__(
        self, state: SchedulerState, workers: dict[str, WorkerView], metrics: LiveMetrics
    ) -> None:
        self.state = state
        self.metrics = metrics
        #: Soft view of workers as regions last reported them (not in the log).
        self.workers = workers
        #: The worker ids each region listed last (so a report replaces only its own).
        self._listed: dict[str, set[str]] = {}
        self.table: dict[str, Callable[[bytes, float], Handled]] = {
            "submit": self.submit,
            "submit_workflow": self.submit_workflow,
            "register": self.register,
            "report": self.report,
            "heartbeat": self.report,
            "cancel": self.cancel,
            "cancel_workflow": self.cancel_workflow,
            "reprioritize": self.reprioritize,
            "retry": self.retry,
            "query": self.query,
            "settings": self.settings,
            **ScheduleHandlers(lambda: self.state).table(),
        }

    def submit(self, data: bytes, now: float) -> Handled:
        req = decode(data, SubmitRequest)
        if not req.tasks:
            raise InvalidRequestError("submit needs at least one task", field="tasks")
        events, ids = self.state.submit(req.tasks, now)
        return Handled(events, SubmitReply(ids=ids, warnings=self.state.unserved(req.tasks)))

    def submit_workflow(self, data: bytes, now: float) -> Handled:
        req = decode(data, SubmitWorkflowRequest)
        events, workflow_id, ids = self.state.submit_workflow(req.workflow, now)
        warnings = self.state.unserved([node.spec for node in req.workflow.nodes])
        reply = SubmitWorkflowReply(workflow_id=workflow_id, ids=ids, warnings=warnings)
        return Handled(events, reply)

    def register(self, data: bytes, now: float) -> Handled:
        req = decode(data, RegisterRegionRequest)
        events = self.state.register_region(req.info, now)
        lease = self.state.settings.region_lease_seconds
        return Handled(events, RegisterRegionReply(lease_seconds=lease))

    def report(self, data: bytes, now: float) -> Handled:
        req = decode(data, RegionReport)
        state = self.state
        # Validate all of it before any part changes the state: all or nothing.
        state.check_report(req.started, req.outcomes, now, late=req.late)
        events: list[Event] = list(state.region_heartbeat(req.region, req.instance, now))
        if req.started:
            events += state.report_started(req.started, now)
        if req.progress:
            events += state.report_progress(req.progress, now)
        if req.outcomes:
            events += state.report(req.outcomes, now)
        if req.held is not None:
            lost = missing_attempts(
                state, req.region, req.instance, set(req.held), LOST_REPLY_GRACE, now
            )
            if lost:
                events += state.report(lost, now)
        late = state.report_late(req.late, now) if req.late else []
        events += late
        duplicates = sum(1 for ev in events if isinstance(ev, TaskDuplicateReport))
        if req.workers is not None:
            # Only this region's previous list is walked: every region reports its workers
            # every second, and walking all workers each time cost O(regions x workers).
            live = {view.id for view in req.workers}
            for wid in self._listed.get(req.region, set()) - live:
                view = self.workers.get(wid)
                if view is not None and view.region == req.region:
                    del self.workers[wid]
            for view in req.workers:
                self.workers[view.id] = view
            self._listed[req.region] = live
        cancel = [
            (s.task_id, s.attempt)
            for s in req.started
            if not self._is_current(s.task_id, s.attempt)
        ]
        news = len(req.outcomes) + len(req.started) + len(req.progress)
        accepted = news - (duplicates - len(late))
        return Handled(
            events,
            RegionReportReply(accepted=accepted, duplicates=duplicates, cancel=cancel),
        )

    def _is_current(self, task_id: str, attempt: int) -> bool:
        task = self.find(task_id)
        return (
            task is not None
            and task.attempt == attempt
            and task.state in (TaskState.ASSIGNED, TaskState.RUNNING)
        )

    def cancel(self, data: bytes, now: float) -> Handled:
        req = decode(data, TaskRef)
        events = self.state.cancel(req.id, now)
        return Handled(events, Ack(events=len(events)))

    def cancel_workflow(self, data: bytes, now: float) -> Handled:
        req = decode(data, TaskRef)
        events = self.state.cancel_workflow(req.id, now)
        return Handled(events, Ack(events=len(events)))

    def reprioritize(self, data: bytes, now: float) -> Handled:
        req = decode(data, ReprioritizeRequest)
        events = self.state.reprioritize(req.id, req.priority, now)
        return Handled(events, Ack(events=len(events)))

    def retry(self, data: bytes, now: float) -> Handled:
        req = decode(data, TaskRef)
        events = self.state.retry(req.id, now)
        return Handled(events, Ack(events=len(events)))

    def settings(self, data: bytes, now: float) -> Handled:
        req = decode(data, SettingsRequest)
        if req.patch is not None:
            try:
                patch = msgspec.json.decode(req.patch)
            except (msgspec.DecodeError, RecursionError) as exc:
                raise InvalidRequestError(
                    f"the settings patch is not JSON: {exc}", field="settings"
                ) from None
            settings = patch_settings(self.state.settings, patch)
        else:
            try:
                settings = msgspec.msgpack.decode(req.settings, type=Settings)
            except msgspec.ValidationError as exc:
                raise InvalidRequestError(f"invalid settings: {exc}", field="settings") from None
        events = self.state.configure(settings, now)
        return Handled(events, Ack(events=len(events)))

    def query(self, data: bytes, now: float) -> Handled:
        req = decode(data, QueryRequest)
        return Handled([], self.answer(req, now))

    def answer(self, req: QueryRequest, now: float) -> object:
        state = self.state
        match req.kind:
            case QueryKind.TASK:
                if not req.id:
                    raise InvalidRequestError("a task query needs an id", field="id")
                return TasksReply(tasks=[state.explain(req.id, now)])
            case QueryKind.TASKS:
                task_state = _parse_state(req.state)
                limit = max(1, min(req.limit, MAX_PAGE))
                tasks, cursor = state.list_tasks(
                    state=task_state,
                    name=req.name,
                    queue=req.queue,
                    region=req.region,
                    workflow_id=req.workflow_id,
                    limit=limit,
                    cursor=req.cursor,
                    newest_first=req.newest_first,
                )
                return TasksReply(tasks=tasks, next_cursor=cursor)
            case QueryKind.WORKFLOW:
                if not req.id:
                    raise InvalidRequestError("a workflow query needs an id", field="id")
                limit = min(req.node_limit or MAX_WORKFLOW_PAGE, MAX_WORKFLOW_PAGE)
                view = state.workflow(req.id, cursor=req.cursor, limit=max(1, limit))
                return WorkflowReply(workflow=view)
            case QueryKind.WORKFLOWS:
                workflows, cursor = state.list_workflows(
                    state=req.state, limit=max(1, min(req.limit, MAX_PAGE)), cursor=req.cursor
                )
                return WorkflowsReply(workflows=workflows, next_cursor=cursor)
            case QueryKind.REGIONS:
                return RegionsReply(regions=state.regions())
            case QueryKind.WORKERS:
                workers = [w for w in self.workers.values() if req.region in (None, w.region)]
                return WorkersReply(workers=workers)
            case QueryKind.STATS:
                base = msgspec.structs.asdict(state.statistics(now))
                live = self.metrics
                stats = StatsView(
                    **base,
                    throughput=live.throughput(now),
                    latency=live.latency(),
                    latency_by_name=live.latency_by_name(now),
                    history=live.history(now),
                )
                return StatsReply(stats=stats)
            case QueryKind.SETTINGS:
                return SettingsReply(settings=state.settings)
            case QueryKind.ADMISSION:
                return admission_state(state)
        raise InvalidRequestError(f"unknown query kind {req.kind!r}", field="kind")

    def find(self, task_id: str, explain_at: float | None = None) -> Task | None:
        """The task, or None; with ``explain_at``, a READY task says what holds it."""
        try:
            if explain_at is not None:
                return self.state.explain(task_id, explain_at)
            return self.state.get(task_id)
        except NotFoundError:
            return None

    def terminal(self, task_id: str) -> bool:
        task = self.find(task_id)
        return task is None or task.state in TERMINAL_STATES


def admission_state(state: SchedulerState) -> AdmissionState:
    """The admission state intake clients check against (see ``publish.py``)."""
    stats = state.admission_statistics()
    return AdmissionState(
        settings=state.settings.admission,
        waiting=stats.waiting,
        queues={q: state.waiting_in(q) for q in stats.queues},
        intake_seq=state.intake_seq,
    )


def _parse_state(value: str | None) -> TaskState | None:
    if value is None:
        return None
    try:
        return TaskState(value)
    except ValueError:
        allowed = ", ".join(s.value for s in TaskState)
        raise InvalidRequestError(
            f"unknown state {value!r}; expected one of {allowed}", field="state"
        ) from None
