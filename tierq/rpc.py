"""Typed request/reply calls to the master, shared by the SDK, the API and the CLI.

One method per master operation; each encodes the request, sends it on the master's subject
and decodes the reply, raising the exception the master reported.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

import msgspec

from .core.model import Task, TaskSpec, WorkflowSpec
from .core.records import WorkflowView
from .core.settings import Settings
from .engine import Engine, Subjects
from .errors import EngineUnavailableError, IntakeBehindError, NoRespondersError, TierqError
from .protocol import (
    Ack,
    AutoscaleStatus,
    QueryKind,
    QueryRequest,
    ReprioritizeRequest,
    SettingsReply,
    SettingsRequest,
    SubmitReply,
    SubmitRequest,
    SubmitWorkflowReply,
    SubmitWorkflowRequest,
    TaskRef,
    TasksReply,
    WaitRequest,
    WorkflowReply,
    WorkflowsReply,
    decode_reply,
    encode,
)

T = TypeVar("T")

#: Default time to wait for the master to answer an ordinary request.
REQUEST_TIMEOUT = 10.0


async def region_autoscalers(
    engine: Engine, subjects: Subjects, region: str, timeout: float
) -> list[AutoscaleStatus]:
    """Every autoscaler of ``region`` that answers within ``timeout`` (one per pool), by task
    types; none when NATS cannot ask now."""
    try:
        answers = await engine.gather(subjects.autoscale_status(region), b"", timeout=timeout)
        found = [decode_reply(data, AutoscaleStatus) for data in answers]
    except TierqError:
        return []
    return sorted(found, key=lambda status: status.task_types)


class MasterClient:
    """Calls the active master over NATS request/reply."""

    def __init__(self, engine: Engine, subjects: Subjects, timeout: float = REQUEST_TIMEOUT):
        self.engine = engine
        self.subjects = subjects
        self.timeout = timeout

    async def call(
        self,
        op: str,
        request: object,
        reply_type: type[T],
        timeout: float | None = None,
        *,
        probe: bool = False,
    ) -> T:
        """One request; resent while no master answers (a failover), up to ``timeout``.

        Resent only when nothing was done: "no responders" (the request reached nobody) and
        :class:`IntakeBehindError` (it named a task the master has not applied yet). A timeout
        is ambiguous (the master may have acted) and is raised to the caller.
        ``probe``: a NATS user without the right to ``op`` is told at once (``Engine.request``).
        """
        limit = timeout or self.timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        payload = encode(request)
        subject = self.subjects.master(op)
        delay = 0.05
        while True:
            sent = loop.time()
            try:
                data = await self.engine.request(
                    subject, payload, timeout=max(0.05, deadline - sent), probe=probe
                )
                return decode_reply(data, reply_type)
            except (NoRespondersError, IntakeBehindError):
                # Resent only if another attempt as long as this one still fits: a resend cut
                # short by the deadline would turn a clear answer into an ambiguous timeout.
                if loop.time() + delay + (loop.time() - sent) >= deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def submit(self, specs: list[TaskSpec]) -> list[str]:
        return (await self.submit_reply(specs)).ids

    async def submit_reply(self, specs: list[TaskSpec]) -> SubmitReply:
        """The whole reply: the ids, and warnings about tasks no live region can run now."""
        return await self.call("submit", SubmitRequest(tasks=specs), SubmitReply)

    async def submit_workflow(self, workflow: WorkflowSpec) -> SubmitWorkflowReply:
        return await self.call(
            "submit_workflow", SubmitWorkflowRequest(workflow=workflow), SubmitWorkflowReply
        )

    async def cancel(self, task_id: str) -> Ack:
        return await self.call("cancel", TaskRef(id=task_id), Ack)

    async def cancel_workflow(self, workflow_id: str) -> Ack:
        return await self.call("cancel_workflow", TaskRef(id=workflow_id), Ack)

    async def reprioritize(self, task_id: str, priority: int) -> Ack:
        return await self.call(
            "reprioritize", ReprioritizeRequest(id=task_id, priority=priority), Ack
        )

    async def retry(self, task_id: str) -> Ack:
        return await self.call("retry", TaskRef(id=task_id), Ack)

    async def get(self, task_id: str) -> Task:
        reply = await self.call("query", QueryRequest(kind=QueryKind.TASK, id=task_id), TasksReply)
        return reply.tasks[0]

    async def list_tasks(self, query: QueryRequest) -> TasksReply:
        return await self.call("query", query, TasksReply)

    async def query(self, query: QueryRequest, reply_type: type[T]) -> T:
        return await self.call("query", query, reply_type)

    async def workflow(
        self, workflow_id: str, *, cursor: str | None = None, node_limit: int | None = None
    ) -> WorkflowView:
        """One page of a workflow's nodes (the master caps a page at MAX_WORKFLOW_PAGE)."""
        query = QueryRequest(
            kind=QueryKind.WORKFLOW, id=workflow_id, cursor=cursor, node_limit=node_limit
        )
        return (await self.call("query", query, WorkflowReply)).workflow

    async def list_workflows(
        self, *, state: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> WorkflowsReply:
        """Workflows newest first, a page at a time (``state``: running, succeeded, failed,
        cancelled)."""
        query = QueryRequest(kind=QueryKind.WORKFLOWS, state=state, limit=limit, cursor=cursor)
        return await self.call("query", query, WorkflowsReply)

    async def workflow_all(self, workflow_id: str, node_limit: int | None = None) -> WorkflowView:
        """The whole workflow: its pages (of ``node_limit`` nodes, the master's cap by
        default) fetched in turn and joined into one view."""
        view = await self.workflow(workflow_id, node_limit=node_limit)
        if view.next_cursor is None:
            return view
        nodes = list(view.nodes)
        edges = list(view.edges)
        last = view
        while last.next_cursor is not None:
            last = await self.workflow(workflow_id, cursor=last.next_cursor, node_limit=node_limit)
            nodes += last.nodes
            edges += last.edges
        # Counts and state from the last page: the freshest.
        return msgspec.structs.replace(last, nodes=nodes, edges=edges, next_cursor=None)

    async def wait(self, task_ids: list[str], timeout: float) -> list[Task]:
        """Tasks as they are when all are terminal, or when ``timeout`` runs out.

        Waiting changes nothing, so it is resent after any transient failure (the master that
        held the wait may have died) until ``timeout`` is spent.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = max(0.0, deadline - loop.time())
            try:
                reply = await self.call(
                    "wait",
                    WaitRequest(ids=task_ids, timeout=left),
                    TasksReply,
                    timeout=left + self.timeout,
                )
            except EngineUnavailableError:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.1)
                continue
            return reply.tasks

    async def put_settings(self, settings_msgpack: bytes) -> Ack:
        return await self.call(
            "settings", SettingsRequest(settings=msgspec.Raw(settings_msgpack)), Ack, probe=True
        )

    async def patch_settings(self, patch: dict[str, object]) -> Ack:
        """Apply an RFC 7396 merge patch to the live settings, in the master, as one change."""
        request = SettingsRequest(patch=msgspec.json.encode(patch))
        return await self.call("settings", request, Ack, probe=True)

    async def settings(self) -> Settings:
        return (await self.query(QueryRequest(kind=QueryKind.SETTINGS), SettingsReply)).settings
