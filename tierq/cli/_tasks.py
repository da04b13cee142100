"""Commands that talk to the master: submit, status, tasks, workflows, cancel."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import click
import msgspec
from rich.console import Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.tree import Tree

from ..client import App, build_spec, task_result
from ..core import WorkflowView
from ..core.model import TERMINAL_STATES, Task, TaskState
from ..errors import WaitTimeoutError
from ._common import (
    STATE_STYLE,
    client_app,
    client_logging,
    err,
    escape,
    json_arg,
    nats_options,
    out,
    run,
    short,
    when,
    with_app,
)


@click.command()
@click.argument("name")
@nats_options
@click.option(
    "--args",
    "args",
    callback=json_arg(list, "array"),
    metavar="JSON",
    help="Positional arguments as a JSON array.",
)
@click.option(
    "--kwargs",
    "kwargs",
    callback=json_arg(dict, "object"),
    metavar="JSON",
    help="Keyword arguments as a JSON object.",
)
@click.option("--priority", "-p", type=int, default=None, help="Priority, higher runs first.")
@click.option("--delay", type=click.FloatRange(0), default=None, help="Start after SECONDS.")
@click.option(
    "--timeout",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="Execution timeout of one attempt, seconds.",
)
@click.option("--retries", type=click.IntRange(0, 100), default=None, help="Retries on failure.")
@click.option("--queue", default=None, help="Queue name.")
@click.option("--task-region", default=None, help="Only this region may run it.")
@click.option("--idempotency-key", default=None, help="Resubmitting with it returns the same task.")
@click.option("--wait", "-w", is_flag=True, help="Wait for the result, showing progress.")
@click.option(
    "--wait-timeout",
    type=click.FloatRange(0),
    default=None,
    help="With --wait: give up after SECONDS (the task goes on).",
)
@click.pass_context
def submit(
    ctx: click.Context,
    name: str,
    nats_url: str | None,
    prefix: str,
    args: list[Any],
    kwargs: dict[str, Any],
    priority: int | None,
    delay: float | None,
    timeout: float | None,
    retries: int | None,
    queue: str | None,
    task_region: str | None,
    idempotency_key: str | None,
    wait: bool,
    wait_timeout: float | None,
) -> None:
    """Submit the task NAME (as declared, e.g. myapp.tasks.add); print its id.

    With --wait, print its result as JSON once it is done (exit 1 if it failed).
    """
    client_logging(ctx)
    logging.getLogger("tierq.client").setLevel(logging.ERROR)  # its warnings are printed here
    options = {
        "priority": priority,
        "delay": delay,
        "timeout": timeout,
        "retries": retries,
        "queue": queue,
        "region": task_region,
        "idempotency_key": idempotency_key,
    }
    spec = build_spec(name, args, kwargs, {k: v for k, v in options.items() if v is not None})
    app = client_app(ctx, nats_url, prefix)

    async def go() -> Task | None:
        (handle,) = await app.submit_many([spec])
        for warning in handle.warnings:
            err.print(f"warning: {warning}", markup=False)
        if not wait:
            out.print(handle.id, markup=False)
            return None
        err.print(f"submitted {name} as {handle.id}", markup=False)
        return await _follow(app, handle.id, name, wait_timeout)

    task = run(with_app(app, go()))
    if task is not None:
        out.print(json.dumps(task_result(task), indent=2, sort_keys=True), markup=False)


async def _follow(app: App, task_id: str, name: str, wait_timeout: float | None) -> Task:
    """Wait for a task with a live progress bar on stderr."""
    master = await app.master()
    deadline = None if wait_timeout is None else time.monotonic() + wait_timeout
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        row = bar.add_task(name, total=1.0, note="submitted")
        while True:
            (task,) = await master.wait([task_id], 0.25)
            note = f"{task.state.value}, attempt {task.attempt}"
            if task.progress_message:
                note += f": {task.progress_message}"
            bar.update(row, completed=task.progress, note=note)
            if task.state in TERMINAL_STATES:
                return task
            if deadline is not None and time.monotonic() >= deadline:
                held = f" ({task.reason})" if task.reason and task.state is TaskState.READY else ""
                raise WaitTimeoutError(
                    f"task {task_id} is still {task.state.value} after {wait_timeout:g} s{held}"
                )


@click.command()
@click.argument("task_id")
@nats_options
@click.option("--json", "as_json", is_flag=True, help="Print the task record as JSON.")
@click.option("--watch", is_flag=True, help="Redraw every second until the task has ended.")
@click.pass_context
def status(
    ctx: click.Context,
    task_id: str,
    nats_url: str | None,
    prefix: str,
    as_json: bool,
    watch: bool,
) -> None:
    """Show one task: state, attempts, progress, result or error."""
    client_logging(ctx)
    app = client_app(ctx, nats_url, prefix)
    if watch and not as_json:
        task = run(with_app(app, _watch(app, task_id)))
    else:
        task = run(with_app(app, app.get(task_id)))
    if as_json:
        out.print(msgspec.json.encode(task).decode(), markup=False)
        return
    _print_task(task)


async def _watch(app: App, task_id: str) -> Task:
    """Redraw the task (without its traceback) until it ends; returns its last record."""
    with Live(console=out, auto_refresh=False, transient=True) as live:
        while True:
            task = await app.get(task_id)
            live.update(Group(*_task_parts(task)), refresh=True)
            if task.state in TERMINAL_STATES:
                return task
            await asyncio.sleep(1.0)


def _print_task(task: Task) -> None:
    for part in _task_parts(task):
        out.print(part)
    if task.error is not None and task.error.traceback:
        out.print(task.error.traceback.rstrip(), markup=False, style="dim")


def _task_parts(task: Task) -> list[Table]:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    style = STATE_STYLE.get(task.state, "")
    rows: list[tuple[str, str]] = [
        ("id", task.id),
        ("name", task.spec.name),
        ("state", f"[{style}]{task.state.value}[/]"),
        ("attempt", f"{task.attempt} of {task.spec.retry.max_attempts}"),
        ("priority", str(task.priority)),
        ("queue", task.spec.queue),
        ("submitted", when(task.submitted_at)),
    ]
    if task.workflow_id:
        rows.append(("workflow", task.workflow_id))
    if task.parents:
        rows.append(("parents", ", ".join(task.parents)))
    if task.state in (TaskState.ASSIGNED, TaskState.RUNNING):
        # Only then: a ready task's region and worker are those of an attempt that ended.
        rows.append(("running on", f"{task.region or '?'} / {task.worker or '?'}"))
    if task.reason:
        rows.append(("waiting" if task.state is TaskState.READY else "reason", task.reason))
    if task.progress or task.progress_message:
        rows.append(("progress", f"{task.progress:.0%} {task.progress_message or ''}".rstrip()))
    if task.state is TaskState.SUCCEEDED:
        rows.append(("result", short(json.dumps(task.result))))
    if task.error is not None:
        rows.append(("error", f"{task.error.type}: {task.error.message}"))
    for key, value in rows:
        grid.add_row(key, value if key == "state" else escape(value))
    parts = [grid]
    if task.history:
        table = Table(
            "attempt",
            "region",
            "worker",
            "started",
            "ended",
            "outcome",
            title="attempts",
            title_justify="left",
        )
        for h in task.history:
            table.add_row(
                str(h.attempt),
                h.region or "",
                h.worker or "",
                when(h.started_at),
                when(h.ended_at),
                (h.outcome or "") + (f" ({h.error.type})" if h.error else ""),
            )
        parts.append(table)
    return parts


@click.command()
@nats_options
@click.option(
    "--state",
    type=click.Choice([s.value for s in TaskState]),
    default=None,
    help="Only tasks in this state.",
)
@click.option("--name", default=None, help="Only tasks with this name.")
@click.option("--queue", default=None, help="Only tasks in this queue.")
@click.option("--workflow", "workflow_id", default=None, help="Only tasks of this workflow.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--cursor", default=None, help="Continue after this cursor (from a previous page).")
@click.option("--json", "as_json", is_flag=True, help="One JSON task record per line.")
@click.option("--oldest", is_flag=True, help="Oldest first (the default is newest first).")
@click.pass_context
def tasks(
    ctx: click.Context,
    nats_url: str | None,
    prefix: str,
    state: str | None,
    name: str | None,
    queue: str | None,
    workflow_id: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
    oldest: bool,
) -> None:
    """List tasks, newest first (--oldest to reverse)."""
    client_logging(ctx)
    app = client_app(ctx, nats_url, prefix)
    page = run(
        with_app(
            app,
            app.list_tasks(
                state=state,
                name=name,
                queue=queue,
                workflow_id=workflow_id,
                limit=limit,
                cursor=cursor,
                newest_first=not oldest,
            ),
        )
    )
    if as_json:
        for task in page.tasks:
            out.print(msgspec.json.encode(task).decode(), markup=False)
        return
    table = Table("id", "name", "state", "attempt", "priority", "progress", "submitted")
    for task in page.tasks:
        style = STATE_STYLE.get(task.state, "")
        table.add_row(
            task.id,
            escape(task.spec.name),
            f"[{style}]{task.state.value}[/]",
            str(task.attempt),
            str(task.priority),
            f"{task.progress:.0%}" if task.progress else "",
            when(task.submitted_at),
        )
    out.print(table)
    if not page.tasks and not page.next_cursor:
        err.print("no tasks match")
    if page.next_cursor:
        err.print(f"more: tierq tasks --cursor {page.next_cursor}", markup=False)


@click.command()
@click.argument("workflow_id", required=False)
@nats_options
@click.option(
    "--state",
    type=click.Choice(["running", "succeeded", "failed", "cancelled"]),
    default=None,
    help="Without an id: only workflows in this state.",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--cursor", default=None, help="Without an id: continue after this cursor.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the graph, or one per line).")
@click.option("--watch", is_flag=True, help="With an id: redraw every second until it ends.")
@click.pass_context
def workflows(
    ctx: click.Context,
    workflow_id: str | None,
    nats_url: str | None,
    prefix: str,
    state: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
    watch: bool,
) -> None:
    """Show a workflow as a tree of its tasks, parents above children; without an id, list
    workflows, newest first."""
    client_logging(ctx)
    app = client_app(ctx, nats_url, prefix)
    if workflow_id is None:
        rows, more = run(with_app(app, app.list_workflows(state=state, limit=limit, cursor=cursor)))
        if as_json:
            for row in rows:
                out.print(msgspec.json.encode(row).decode(), markup=False)
            return
        table = Table("id", "name", "tasks", "done", "state", "submitted")
        for row in rows:
            table.add_row(
                row.id,
                escape(row.name),
                str(row.total),
                str(row.done),
                row.state or "running",
                when(row.submitted_at),
            )
        out.print(table)
        if not rows:
            err.print("no workflows match")
        if more:
            err.print(f"more: tierq workflows --cursor {more}", markup=False)
        return
    if watch and not as_json:
        view = run(with_app(app, _watch_workflow(app, workflow_id)))
    else:
        view = run(with_app(app, app.get_workflow(workflow_id)))
    if as_json:
        out.print(msgspec.json.encode(view).decode(), markup=False)
        return
    out.print(workflow_tree(view))


async def _watch_workflow(app: App, workflow_id: str) -> WorkflowView:
    """Redraw the workflow's tree until every task has ended; returns the last view."""
    with Live(console=out, auto_refresh=False, transient=True) as live:
        while True:
            view = await app.get_workflow(workflow_id)
            live.update(workflow_tree(view), refresh=True)
            if view.state is not None:  # succeeded, failed or cancelled: it has ended
                return view
            await asyncio.sleep(1.0)


def workflow_tree(view: WorkflowView) -> Tree:
    """The graph as a tree; a node with several parents is drawn once, then referenced."""
    children: dict[str, list[str]] = {}
    has_parent: set[str] = set()
    for parent, child in view.edges:
        children.setdefault(parent, []).append(child)
        has_parent.add(child)
    nodes = {n.task_id: n for n in view.nodes}
    counts = ", ".join(f"{k} {v}" for k, v in sorted(view.counts.items()))
    state = f" [{view.state}]" if view.state else ""
    root = Tree(
        f"[bold]{escape(view.name)}[/] {view.id}{state}  {view.done}/{view.total} done"
        + (f"  ({counts})" if counts else "")
    )
    drawn: set[str] = set()

    def label(task_id: str) -> str:
        node = nodes.get(task_id)
        if node is None:
            return task_id
        style = STATE_STYLE.get(node.state, "") if node.state else "dim"
        state_text = node.state.value if node.state else "evicted"
        return (
            f"[bold]{escape(node.key)}[/] {escape(node.name)} "
            f"[{style}]{state_text}[/] [dim]{task_id}[/]"
        )

    def draw(branch: Tree, task_id: str) -> None:
        if task_id in drawn:
            key = nodes[task_id].key if task_id in nodes else task_id
            branch.add(f"[dim]{escape(key)} (shown above)[/]")
            return
        drawn.add(task_id)
        sub = branch.add(label(task_id))
        for child in children.get(task_id, []):
            draw(sub, child)

    for node in view.nodes:
        if node.task_id not in has_parent:
            draw(root, node.task_id)
    return root


@click.command()
@click.argument("ident")
@nats_options
@click.option("--workflow", is_flag=True, help="IDENT is a workflow: cancel all its tasks.")
@click.pass_context
def cancel(
    ctx: click.Context, ident: str, nats_url: str | None, prefix: str, workflow: bool
) -> None:
    """Cancel a task (queued or running) or, with --workflow, a whole workflow."""
    client_logging(ctx)
    app = client_app(ctx, nats_url, prefix)

    async def go() -> None:
        master = await app.master()
        if workflow:
            await master.cancel_workflow(ident)
        else:
            await master.cancel(ident)

    run(with_app(app, go()))
    err.print(f"cancelled {ident}", markup=False)
