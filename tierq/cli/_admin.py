"""Commands that change a task or show the fleet: retry, priority, regions, workers, and
submit-workflow (a workflow from a JSON file)."""

from __future__ import annotations

from typing import BinaryIO

import click
import msgspec
from rich.table import Table

from ..core.model import PRIORITY_MAX, PRIORITY_MIN, Task, TaskState, WorkflowSpec
from ..protocol import (
    AutoscaleStatus,
    QueryKind,
    QueryRequest,
    RegionsReply,
    SubmitWorkflowReply,
    WorkersReply,
)
from ._autoscalers import autoscaler_table, autoscalers, workers_cell
from ._common import client_app, client_logging, err, escape, nats_options, out, run, when, with_app


@click.command()
@click.argument("task_id")
@nats_options
@click.pass_context
def retry(ctx: click.Context, task_id: str, nats_url: str | None, prefix: str) -> None:
    """Run a dead, failed or cancelled task again, with a fresh attempt budget."""
    client_logging(ctx)
    app = client_app(ctx, nats_url, prefix)

    async def go() -> None:
        await (await app.master()).retry(task_id)

    run(with_app(app, go()))
    err.print(f"retrying {task_id}", markup=False)


@click.command()
@click.argument("task_id")
@click.argument("value", type=click.IntRange(PRIORITY_MIN, PRIORITY_MAX))
@nats_options
@click.pass_context
def priority(
    ctx: click.Context, task_id: str, value: int, nats_url: str | None, prefix: str
) -> None:
    """Change the priority of a task that has not started (higher runs first)."""
    client_logging(ctx)
    app = client_app(ctx, nats_url, prefix)

    async def go() -> None:
        await (await app.master()).reprioritize(task_id, value)

    run(with_app(app, go()))
    err.print(f"{task_id}: priority {value}", markup=False)


@click.command()
@nats_options
@click.option("--json", "as_json", is_flag=True, help="The regions as one JSON document.")
@click.pass_context
def regions(ctx: click.Context, nats_url: str | None, prefix: str, as_json: bool) -> None:
    """List the registered regions: labels, task types, tasks held, lease, and each one's
    autoscaler (desired and live workers, bounds, health, latest decisions)."""
    client_logging(ctx)
    app = client_app(ctx, nats_url, prefix)

    async def go() -> tuple[RegionsReply, dict[str, list[AutoscaleStatus]]]:
        master = await app.master()
        reply = await master.query(QueryRequest(kind=QueryKind.REGIONS), RegionsReply)
        return reply, await autoscalers(master, (r.name for r in reply.regions))

    reply, scalers = run(with_app(app, go()))
    if as_json:
        rows = [
            {
                **msgspec.to_builtins(r),
                # Every pool's autoscaler; "autoscaler" is the first, as older output had it.
                "autoscalers": msgspec.to_builtins(scalers.get(r.name, [])),
                "autoscaler": msgspec.to_builtins(next(iter(scalers.get(r.name, [])), None)),
            }
            for r in reply.regions
        ]
        out.print(msgspec.json.encode(rows).decode(), markup=False)
        return
    if not reply.regions:
        err.print("no region is registered", markup=False)
        return
    table = Table("region", "labels", "task types", "held", "lease until", "workers")
    for r in reply.regions:
        table.add_row(
            escape(r.name),
            escape(", ".join(r.labels) or "-"),
            escape(", ".join(r.task_types) or "- (no live worker)"),
            str(r.held),
            when(r.lease_expires_at),
            workers_cell(scalers.get(r.name)),
        )
    out.print(table)
    if scalers:
        out.print(autoscaler_table(scalers))


@click.command()
@nats_options
@click.option("--region", "region_name", default=None, help="Only the workers of this region.")
@click.option("--json", "as_json", is_flag=True, help="The workers as one JSON document.")
@click.pass_context
def workers(
    ctx: click.Context,
    nats_url: str | None,
    prefix: str,
    region_name: str | None,
    as_json: bool,
) -> None:
    """List the live workers: region, task types, slots in use, done and failed (after the
    autoscalers of their regions, if any runs)."""
    client_logging(ctx)
    app = client_app(ctx, nats_url, prefix)

    async def go() -> tuple[WorkersReply, dict[str, list[AutoscaleStatus]]]:
        master = await app.master()
        reply = await master.query(QueryRequest(kind=QueryKind.WORKERS), WorkersReply)
        regions = [region_name] if region_name else [w.region for w in reply.workers]
        return reply, await autoscalers(master, regions)

    reply, scalers = run(with_app(app, go()))
    found = [w for w in reply.workers if region_name in (None, w.region)]
    if as_json:
        out.print(msgspec.json.encode(found).decode(), markup=False)
        return
    if scalers:
        out.print(autoscaler_table(scalers))
    if not found:
        err.print("no live worker", markup=False)
        return
    table = Table("worker", "region", "task types", "running", "done", "failed", "state")
    for w in found:
        table.add_row(
            escape(w.id),
            escape(w.region),
            escape(", ".join(w.task_types)),
            f"{w.running}/{w.concurrency}",
            str(w.completed),
            str(w.failed),
            "draining" if w.draining else "live",
        )
    out.print(table)


@click.command("submit-workflow")
@click.argument("path", type=click.File("rb"))
@nats_options
@click.option("--wait", is_flag=True, help="Wait until every task has ended; exit 1 if one failed.")
@click.option("--wait-timeout", type=click.FloatRange(0), default=None, help="Seconds to wait.")
@click.pass_context
def submit_workflow(
    ctx: click.Context,
    path: BinaryIO,
    nats_url: str | None,
    prefix: str,
    wait: bool,
    wait_timeout: float | None,
) -> None:
    """Submit the workflow in the JSON file PATH ("-" for stdin); print its id.

    \b
    The document is the workflow spec, as POST /v1/workflows takes it:
      {"name": "etl", "nodes": [{"key": "a", "spec": {"name": "myapp.tasks.fetch",
        "args": ["https://example.org"]}}, {"key": "b", "spec": {"name": "myapp.tasks.total",
        "args": [{"$result": "a"}]}}], "edges": [["a", "b"]]}
    """
    client_logging(ctx)
    try:
        spec = msgspec.json.decode(path.read(), type=WorkflowSpec)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise click.UsageError(f"{path.name}: not a workflow spec: {exc}") from None
    app = client_app(ctx, nats_url, prefix)

    async def go() -> tuple[SubmitWorkflowReply, list[Task]]:
        reply = await (await app.master()).submit_workflow(spec)
        done = await app.wait_tasks(list(reply.ids.values()), wait_timeout) if wait else []
        return reply, done

    reply, done = run(with_app(app, go()))
    for warning in reply.warnings:
        err.print(f"warning: {warning}", markup=False)
    out.print(reply.workflow_id, markup=False)
    failed = [t for t in done if t.state is not TaskState.SUCCEEDED]
    for task in failed:
        err.print(f"{task.id} ({task.spec.name}): {task.state.value}", markup=False)
    if failed:
        ctx.exit(1)
