"""Workflows: a DAG submitted as one command, its failure policy, and its end.

``submit_workflow`` validates the whole graph (``dag.plan_workflow``) and every node before it
builds an event; the tasks follow the ``workflow_submitted`` event parents first. A workflow
finishes (``workflow_finished``) once all its tasks are terminal: ``finish_workflows`` runs at
the end of every command that may have ended tasks.
"""

from __future__ import annotations

import hashlib

import msgspec

from ..errors import ConflictError, InvalidRequestError
from .book import DEAD, PENDING, READY, SKIPPED, SUCCEEDED, Book
from .dag import WorkflowPlan, plan_workflow
from .declared import with_declared
from .events import Event, TaskSubmitted, WorkflowFinished, WorkflowSubmitted
from .ids import WORKFLOW_PREFIX
from .model import FailurePolicy, TaskSpec, WorkflowSpec
from .records import WorkflowRecord
from .submission import admit_specs, check_parents, check_refs, on_submitted
from .validate import check_name, check_specs, check_text

__all__ = [
    "finish_workflows",
    "on_workflow_finished",
    "on_workflow_submitted",
    "submit_workflow",
]


def _digest(wf: WorkflowSpec) -> str:
    return hashlib.blake2b(msgspec.msgpack.encode(wf), digest_size=16).hexdigest()


def submit_workflow(
    book: Book, wf: WorkflowSpec, now: float
) -> tuple[list[Event], str, dict[str, str]]:
    """Accept a DAG atomically; returns the events, the workflow id and task ids by key.

    Parents come first in the events (topological order), and ids are handed out in that
    order. A node's ``depends_on`` may name other keys or existing task ids.
    """
    now = float(now)
    if not isinstance(wf, WorkflowSpec):
        raise InvalidRequestError("workflow: expected a workflow spec", field="workflow")
    check_name(wf.name, "name")
    if not isinstance(wf.on_failure, FailurePolicy):
        raise InvalidRequestError("on_failure: unknown failure policy", field="on_failure")
    digest = None
    if wf.idempotency_key is not None:
        check_text(wf.idempotency_key, "idempotency_key", 256)
        digest = _digest(wf)
        existing = book.workflows.by_key(wf.idempotency_key)
        if existing is not None:
            rec = book.workflows[existing]
            if rec.digest != digest:
                raise ConflictError(
                    f"idempotency_key {wf.idempotency_key!r} was used for workflow "
                    f"{existing} with a different spec",
                    ids=(existing,),
                )
            return [], existing, dict(rec.nodes)
    if not isinstance(wf.nodes, list) or not isinstance(wf.edges, list):
        raise InvalidRequestError("nodes/edges must be lists", field="nodes")
    settings = book.settings
    plan = plan_workflow(
        wf, settings.max_workflow_nodes, settings.max_workflow_edges, book.tasks.__contains__
    )
    specs, uses = _check_nodes(book, wf, plan)

    wf_id = book.ids.next(now, WORKFLOW_PREFIX)
    node_ids: list[str] = [""] * len(wf.nodes)
    for i, tid in zip(plan.order, book.ids.next_many(now, len(plan.order)), strict=True):
        node_ids[i] = tid
    by_key = {wf.nodes[i].key: node_ids[i] for i in plan.order}
    out: list[Event] = []
    book.emit(
        WorkflowSubmitted(
            at=now,
            id=wf_id,
            name=wf.name,
            policy=wf.on_failure,
            nodes=by_key,
            # Straight from the parent lists: plan.edges would build the int pairs first.
            edges=[
                (node_ids[p], cid)
                for cid, ps in zip(node_ids, plan.parents, strict=True)
                for p in ps
            ],
            idempotency_key=wf.idempotency_key,
            digest=digest,
        ),
        out,
    )
    _submit_nodes(book, wf_id, node_ids, specs, uses, plan, now, out)
    return out, wf_id, by_key


def _submit_nodes(
    book: Book,
    wf_id: str,
    node_ids: list[str],
    specs: list[TaskSpec],
    uses: list[bool],
    plan: WorkflowPlan,
    now: float,
    out: list[Event],
) -> None:
    """One ``task_submitted`` per node, parents first, each applied before the next: a node
    is READY only if no parent of it (in the workflow or outside) is unfinished."""
    tasks = book.tasks
    local_parents = plan.parents
    external = plan.external
    apply = on_submitted
    append = out.append
    for i in plan.order:
        spec = specs[i]
        local = local_parents[i]
        ext = external[i]
        parents: tuple[str, ...] = tuple([node_ids[p] for p in local]) if local else ()
        if ext:
            parents += ext
        run_at = spec.run_at
        not_before = run_at if run_at is not None and run_at > now else None
        waiting = not_before is not None or bool(local)
        if not waiting and ext:
            waiting = any(tasks[p].state is not SUCCEEDED for p in ext)
        ev = TaskSubmitted(
            at=now,
            id=node_ids[i],
            spec=spec,
            state=PENDING if waiting else READY,
            workflow_id=wf_id,
            parents=parents,
            not_before=not_before,
            uses_results=uses[i],
        )
        apply(book, ev)
        append(ev)


def _check_nodes(
    book: Book, wf: WorkflowSpec, plan: WorkflowPlan
) -> tuple[list[TaskSpec], list[bool]]:
    """Validate every node's spec and admission; return the normalised specs."""
    nodes = wf.nodes
    given = with_declared(book, [node.spec for node in nodes])
    checked = check_specs(given, "nodes", book.settings, ".spec")
    specs: list[TaskSpec] = []
    uses: list[bool] = []
    external = plan.external
    for i, (spec, refs) in enumerate(checked):
        if spec.idempotency_key is not None or external[i] or refs:
            field = f"nodes[{i}].spec"
            if spec.idempotency_key is not None:
                raise InvalidRequestError(
                    f"{field}.idempotency_key: give the workflow an idempotency_key instead",
                    field=f"{field}.idempotency_key",
                )
            if external[i]:
                check_parents(book, external[i], f"{field}.depends_on")
            if refs:
                local = {nodes[p].key: nodes[p].key for p in plan.parents[i]}
                check_refs(spec, external[i], local, field)
        specs.append(spec)
        uses.append(refs)
    admit_specs(book, specs)
    return specs, uses


def on_workflow_submitted(book: Book, ev: WorkflowSubmitted) -> None:
    book.ids.observe(ev.id)
    wf = WorkflowRecord(
        id=ev.id,
        name=ev.name,
        policy=ev.policy,
        nodes=dict(ev.nodes),
        edges=list(ev.edges),
        submitted_at=ev.at,
        idempotency_key=ev.idempotency_key,
        digest=ev.digest,
    )
    book.workflows.add(wf)


def on_workflow_finished(book: Book, ev: WorkflowFinished) -> None:
    book.workflows.finish(ev.id, ev.state, ev.at)


def finish_workflows(
    book: Book, now: float, out: list[Event], cancelled: str | None = None
) -> None:
    finishing = book.workflows.finishing()
    if not finishing:
        return
    tasks = book.tasks
    for wf_id in finishing:
        wf = book.workflows[wf_id]
        states = {tasks[t].state for t in wf.nodes.values() if t in tasks}
        if states <= {SUCCEEDED}:
            state = "succeeded"
        elif wf_id == cancelled:
            state = "cancelled"
        elif DEAD in states or SKIPPED in states:
            state = "failed"
        else:
            state = "cancelled"
        book.emit(WorkflowFinished(at=now, id=wf_id, state=state), out)
