"""The sample tasks behind ``tierq dev --demo``: a small ETL workflow with progress, a flaky
step that succeeds on retry, and a few prioritised side tasks.

Workers load this module like any other (``tierq worker tierq.demo``); :func:`run_demo`
submits the sample and shows it live until every task is done.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn
from rich.table import Table

from .client import App, TaskContext, TaskHandle, WorkflowHandle
from .config import NatsConfig
from .core.model import TERMINAL_STATES, RegionInfo, Task, TaskSpec, TaskState
from .core.waiting import unserved_message
from .errors import TierqError
from .protocol import QueryKind, QueryRequest, RegionsReply

__all__ = ["app", "run_demo", "run_demo_against"]

app = App()


@app.task(timeout=30)
async def extract(source: str, rows: int, ctx: TaskContext) -> list[dict[str, Any]]:
    """Pretend to page through a source system."""
    out: list[dict[str, Any]] = []
    for page in range(5):
        await asyncio.sleep(0.15)
        out += [
            {"source": source, "id": page * 100 + i, "amount": (i * 37) % 101}
            for i in range(rows // 5)
        ]
        ctx.progress((page + 1) / 5, f"page {page + 1}/5 of {source}")
    return out


class UpstreamHiccup(ConnectionError):
    """What the flaky enrichment service throws on a bad day."""


@app.task(retries=3, backoff=0.5, retry_on=[UpstreamHiccup], timeout=30)
def enrich(rows: list[dict[str, Any]], ctx: TaskContext) -> list[dict[str, Any]]:
    """Calls a flaky service: the first attempt always fails, the retry goes through."""
    ctx.progress(0.1, f"attempt {ctx.attempt}: calling the enrichment service")
    time.sleep(0.3)
    if ctx.attempt == 1:
        raise UpstreamHiccup("enrichment service timed out (this is the demo's planned failure)")
    for i, row in enumerate(rows):
        row["region"] = ("eu", "us", "apac")[row["id"] % 3]
        if i % 20 == 0:
            ctx.progress(0.1 + 0.9 * i / max(1, len(rows)), f"enriched {i}/{len(rows)}")
    return rows


@app.task(timeout=30)
def transform(rows: list[dict[str, Any]], ctx: TaskContext) -> dict[str, Any]:
    """Aggregate amounts per region (sync: runs in a worker thread)."""
    totals: dict[str, int] = {}
    for i, row in enumerate(rows):
        key = row.get("region", row["source"])
        totals[key] = totals.get(key, 0) + row["amount"]
        if i % 25 == 0:
            ctx.progress(i / max(1, len(rows)), "aggregating")
            time.sleep(0.02)
    return {"rows": len(rows), "totals": totals}


@app.task(timeout=30)
async def load(summary: dict[str, Any], table: str) -> dict[str, Any]:
    await asyncio.sleep(0.2)
    return {"table": table, "rows": summary["rows"], "totals": summary["totals"]}


@app.task(timeout=30)
async def report(orders: dict[str, Any], customers: dict[str, Any]) -> str:
    return (
        f"loaded {orders['rows']} order rows into {orders['table']} and "
        f"{customers['rows']} customer rows into {customers['table']}"
    )


@app.task(timeout=30)
async def housekeeping(n: int) -> int:
    """Background work submitted at low priority: runs when nothing urgent waits."""
    await asyncio.sleep(0.05 + random.random() * 0.1)
    return n


@app.task(priority=100, timeout=30)
async def page_oncall(message: str) -> str:
    """Urgent: submitted last, runs before the queued housekeeping."""
    await asyncio.sleep(0.05)
    return f"paged: {message}"


def build(client: App) -> Any:
    """The sample workflow: two extract branches joined by a report."""
    wf = client.workflow("demo-etl")
    orders = wf.add(extract, "orders", 200, key="extract-orders")
    enriched = wf.add(enrich, orders, key="enrich-orders")
    order_totals = wf.add(transform, enriched, key="transform-orders")
    orders_loaded = wf.add(load, order_totals, table="fact_orders", key="load-orders")
    customers = wf.add(extract, "customers", 100, key="extract-customers")
    customer_totals = wf.add(transform, customers, key="transform-customers")
    customers_loaded = wf.add(load, customer_totals, table="dim_customers", key="load-customers")
    wf.add(report, orders_loaded, customers_loaded, key="report")
    return wf


async def run_demo(client: App, console: Console | None = None) -> dict[str, Any]:
    """Submit the sample workflow and side tasks, show them live, return the results."""
    console = console or Console(stderr=True)
    run: WorkflowHandle = await build(client).submit()
    side = await client.submit_many(
        [housekeeping.spec(i, priority=-10) for i in range(6)]
        + [page_oncall.spec("disk 91% full on db-2")]
    )
    console.print(
        f"submitted workflow [bold]{run.id}[/] ({len(run.ids)} tasks) and {len(side)} side tasks"
    )
    await _show(client, run, side, console)
    if not console.is_terminal:
        console.line()  # a live display ends without a newline when it is not a terminal
    results = await run.result(timeout=60)
    console.print(f"[green]done:[/] {results['report']}")
    return results


async def run_demo_against(nats: NatsConfig) -> None:
    """What ``tierq dev --demo`` calls once the stack is up: it waits for the workers to
    register the demo's task types (the worker processes start after the stack says it is
    up), so the first submissions are not told that no worker runs them."""
    async with App(nats) as client:
        try:
            await until_served(client, set(app.tasks))
            await run_demo(client)
        except TierqError as exc:
            Console(stderr=True).print(f"[red]demo failed:[/] {exc}")


async def until_served(client: App, names: set[str], timeout: float = 20.0) -> bool:
    """Wait until some live region has workers for every task type in ``names``; False if
    ``timeout`` seconds pass first (submitting is still fine: the tasks wait for workers)."""
    master = await client.master()
    specs = [TaskSpec(name=name) for name in sorted(names)]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        reply = await master.query(QueryRequest(kind=QueryKind.REGIONS), RegionsReply)
        regions = [
            RegionInfo(name=r.name, instance=r.instance, labels=r.labels, task_types=r.task_types)
            for r in reply.regions
        ]
        # The same test a submission's "no live worker" warning makes.
        if all(unserved_message(regions, spec) is None for spec in specs):
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.1)


async def _show(client: App, run: WorkflowHandle, side: list[TaskHandle], console: Console) -> None:
    bars = Progress(
        TextColumn("{task.fields[key]:<20}"),
        BarColumn(bar_width=24),
        TaskProgressColumn(),
        TextColumn("{task.fields[state]:<10} {task.fields[note]}"),
        console=console,
    )
    rows: dict[str, TaskID] = {
        task_id: bars.add_task("", total=1.0, key=key, state="", note="")
        for key, task_id in run.ids.items()
    }
    ids = list(run.ids.values()) + [h.id for h in side]
    with Live(Group(bars, Table()), console=console, refresh_per_second=10) as live:
        while True:
            tasks = await client.get_many(ids)
            by_id = {t.id: t for t in tasks}
            for task_id, row in rows.items():
                task = by_id.get(task_id)
                if task is not None:
                    bars.update(
                        row, completed=_fraction(task), state=task.state.value, note=_note(task)
                    )
            live.update(Group(bars, _side_table(side, by_id)))
            if all(t.state in TERMINAL_STATES for t in tasks):
                return
            await asyncio.sleep(0.2)


def _fraction(task: Task) -> float:
    return 1.0 if task.state is TaskState.SUCCEEDED else task.progress


def _note(task: Task) -> str:
    if task.state is TaskState.FAILED and task.error is not None:
        return f"attempt {task.attempt - 1} failed ({task.error.type.rsplit('.', 1)[-1]}), retrying"
    if task.state is TaskState.SUCCEEDED:
        return f"succeeded on attempt {task.attempt}" if task.attempt > 1 else ""
    return task.progress_message or ""


def _side_table(side: list[TaskHandle], by_id: dict[str, Task]) -> Table:
    table = Table("side task", "priority", "state", "finished", title_justify="left")
    finished = sorted(
        (t for t in (by_id.get(h.id) for h in side) if t is not None),
        key=lambda t: t.timestamps.get("succeeded", float("inf")),
    )
    for order, task in enumerate(finished, 1):
        done = task.state is TaskState.SUCCEEDED
        table.add_row(
            task.spec.name.rsplit(".", 1)[-1],
            str(task.priority),
            task.state.value,
            f"#{order}" if done else "",
        )
    return table
