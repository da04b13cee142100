"""The ``tierq`` command: run the services, submit and inspect tasks.

Every command takes ``--nats URL`` (env ``TIERQ_NATS``, default ``nats://127.0.0.1:4222``) and
``--prefix`` (env ``TIERQ_PREFIX``). Expected failures (bad flags, bad JSON, an unreachable
server, a failed task) print one clear line on stderr and exit non-zero: 2 for bad input,
1 for everything else, 130 when interrupted. Results go to stdout, progress to stderr, so
``tierq submit x --wait > out.json`` captures just the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click
import msgspec
from rich.console import Console
from rich.logging import RichHandler
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

from .client import App, build_spec, task_result
from .config import NatsConfig, WorkerConfig
from .core import WorkflowView
from .core.model import TERMINAL_STATES, Task, TaskState
from .errors import (
    BackpressureError,
    EngineUnavailableError,
    InvalidRequestError,
    NotFoundError,
    TaskFailedError,
    TierqError,
    WaitTimeoutError,
)

__all__ = ["main"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)

_STATE_STYLE = {
    TaskState.PENDING: "dim",
    TaskState.READY: "cyan",
    TaskState.ASSIGNED: "blue",
    TaskState.RUNNING: "bold blue",
    TaskState.SUCCEEDED: "green",
    TaskState.FAILED: "yellow",
    TaskState.DEAD: "bold red",
    TaskState.CANCELLED: "magenta",
    TaskState.SKIPPED: "dim magenta",
}


# --- errors and plumbing ------------------------------------------------------------------


class CliError(click.ClickException):
    """An expected failure: one message, no traceback, exit 1."""

    def show(self, file: Any = None) -> None:
        err.print(f"[bold red]error:[/] {_escape(self.format_message())}", soft_wrap=True)


class CliInputError(CliError):
    """The input was wrong (exit 2, like a usage error)."""

    exit_code = 2


def _explain(exc: TierqError, prefix: str) -> CliError:
    if isinstance(exc, InvalidRequestError):
        where = f" ({exc.field})" if exc.field else ""
        return CliInputError(f"invalid request{where}: {exc.message}")
    if isinstance(exc, EngineUnavailableError):
        if "no responders" in exc.message:
            return CliError(
                f"no tierq service answers ({exc.message}); is a master running with prefix "
                f"{prefix!r}? Start everything locally with `tierq dev`."
            )
        return CliError(f"{exc.message}\nstart a local server with `tierq dev`, or pass --nats URL")
    if isinstance(exc, BackpressureError):
        return CliError(f"{exc.message} (retry after {exc.retry_after:g} s)")
    if isinstance(exc, TaskFailedError):
        if exc.traceback:
            err.print(exc.traceback.rstrip(), markup=False, style="dim")
        return CliError(f"task failed: {exc.error_type}: {exc.message}")
    if isinstance(exc, NotFoundError):
        return CliError(exc.message)
    return CliError(str(exc) or type(exc).__name__)


class _Group(click.Group):
    """Turns tierq's expected errors into one-line messages with an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TierqError as exc:
            prefix = ctx.meta.get("tierq.prefix", "tierq")
            raise _explain(exc, prefix) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            ctx.exit(130)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh loop, on uvloop when it is installed."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a Linux dependency
        pass
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def _serve(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a service until SIGINT or SIGTERM, then let it shut down and exit 0."""

    async def serve() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await make()

    _run(serve())


def _client(ctx: click.Context, nats_url: str | None, prefix: str) -> App:
    ctx.meta["tierq.prefix"] = prefix
    return App(_nats_config(nats_url, prefix))


def _nats_config(nats_url: str | None, prefix: str) -> NatsConfig:
    config = NatsConfig.from_env(servers=nats_url, prefix=prefix)
    if not config.servers:
        config = msgspec.structs.replace(config, servers=("nats://127.0.0.1:4222",))
    return config


async def _with_app(app: App, coro: Coroutine[Any, Any, T]) -> T:
    async with app:
        return await coro


def nats_options(fn: F) -> F:
    fn = click.option(
        "--prefix",
        envvar="TIERQ_PREFIX",
        default="tierq",
        show_default=True,
        help="Subject prefix of the installation [env TIERQ_PREFIX].",
    )(fn)
    return click.option(
        "--nats",
        "nats_url",
        envvar="TIERQ_NATS",
        metavar="URL",
        help="NATS server URL(s), comma-separated [env TIERQ_NATS; default nats://127.0.0.1:4222].",
    )(fn)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(message)s",
        datefmt="%H:%M:%S",
        handlers=[RichHandler(console=err, show_path=False, rich_tracebacks=False)],
        force=True,
    )


def _json_arg(kind: type[Any], what: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return kind()
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(parsed, kind):
            raise click.BadParameter(f"must be a JSON {what}, got {type(parsed).__name__}")
        return parsed

    return parse


# --- the command group --------------------------------------------------------------------


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default=None,
    help="Log level (services default to info, other commands to warning).",
)
@click.version_option(package_name="tierq", message="tierq %(version)s")
@click.pass_context
def main(ctx: click.Context, log_level: str | None) -> None:
    """tierq: a distributed task scheduler for Python.

    \b
    Quick start:
      tierq dev --demo                run everything locally with a sample workflow
      tierq dev myapp.tasks           ... with your own tasks
      tierq submit myapp.tasks.add --args '[1, 2]' --wait
    """
    ctx.ensure_object(dict)
    ctx.obj["log_level"] = log_level


def _service_logging(ctx: click.Context) -> None:
    _setup_logging(ctx.obj.get("log_level") or "info")


def _client_logging(ctx: click.Context) -> None:
    level = ctx.obj.get("log_level")
    _setup_logging(level or "warning")
    if level is None:
        # Connection retries are the engine's business; the command reports the outcome.
        logging.getLogger("tierq.engine").setLevel(logging.ERROR)


# --- services -----------------------------------------------------------------------------


@main.command()
@click.argument("modules", nargs=-1)
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    default=2,
    show_default=True,
    help="Worker processes to start.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 10_000),
    default=8,
    show_default=True,
    help="Slots per worker.",
)
@click.option(
    "--pool",
    type=click.Choice(["async", "thread", "process"]),
    default="async",
    show_default=True,
    help="Where sync task functions run.",
)
@click.option("--demo", is_flag=True, help="Load tierq.demo and run its sample workflow.")
@click.option(
    "--nats",
    "nats_url",
    metavar="URL",
    help="Use this NATS server instead of starting an embedded one.",
)
@click.option(
    "--nats-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port of the embedded nats-server [default: a free one].",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8000,
    show_default=True,
    help="HTTP port of the API and dashboard.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=".tierq",
    show_default=True,
    help="Where the embedded server keeps its JetStream data.",
)
@click.option(
    "--prefix", envvar="TIERQ_PREFIX", default="tierq", show_default=True, help="Subject prefix."
)
@click.option("--region", default="default", show_default=True, help="Name of the region.")
@click.option("--no-api", is_flag=True, help="Do not start the API and dashboard.")
@click.option(
    "--sync-always",
    is_flag=True,
    help="Durable profile: fsync every write before acknowledging it.",
)
@click.pass_context
def dev(
    ctx: click.Context,
    modules: tuple[str, ...],
    workers: int,
    concurrency: int,
    pool: str,
    demo: bool,
    nats_url: str | None,
    nats_port: int | None,
    port: int,
    data_dir: str,
    prefix: str,
    region: str,
    no_api: bool,
    sync_always: bool,
) -> None:
    """Run nats-server, master, region, API and workers on this machine.

    MODULES are the task modules the workers load (e.g. myapp.tasks).
    """
    if not modules and not demo:
        raise click.UsageError("give the task modules to run (tierq dev myapp.tasks) or --demo")
    _service_logging(ctx)
    from .dev import DevOptions, run_dev

    options = DevOptions(
        modules=list(modules),
        workers=workers,
        concurrency=concurrency,
        pool=pool,
        demo=demo,
        nats_url=nats_url,
        data_dir=data_dir,
        nats_port=nats_port,
        api_port=port,
        no_api=no_api,
        sync_always=sync_always,
        prefix=prefix,
        region=region,
        announce=lambda line: err.print(line, markup=False),
    )
    _run(run_dev(options))


@main.command()
@nats_options
@click.option("--holder", default=None, help="Identity in the leader lease [default: host:pid].")
@click.pass_context
def master(ctx: click.Context, nats_url: str | None, prefix: str, holder: str | None) -> None:
    """Run a master (the first one leads; more are standbys)."""
    _service_logging(ctx)
    ctx.meta["tierq.prefix"] = prefix
    from .config import MasterConfig
    from .master import run_master

    config = MasterConfig(nats=_nats_config(nats_url, prefix), holder=holder)
    _serve(lambda: run_master(config))


@main.command()
@nats_options
@click.option("--name", default="default", show_default=True, help="Region name.")
@click.option(
    "--labels",
    multiple=True,
    metavar="LABEL[,LABEL]",
    help="Labels this region offers (e.g. gpu); repeat or comma-separate.",
)
@click.option(
    "--worker-lease",
    type=click.FloatRange(0.5, 3600),
    default=10.0,
    show_default=True,
    help="Seconds without a heartbeat before a worker is lost.",
)
@click.pass_context
def region(
    ctx: click.Context,
    nats_url: str | None,
    prefix: str,
    name: str,
    labels: tuple[str, ...],
    worker_lease: float,
) -> None:
    """Run a regional scheduler."""
    _service_logging(ctx)
    ctx.meta["tierq.prefix"] = prefix
    from .config import RegionConfig
    from .region import run_region

    flat = tuple(label.strip() for item in labels for label in item.split(",") if label.strip())
    config = RegionConfig(
        nats=_nats_config(nats_url, prefix),
        name=name,
        labels=flat,
        worker_lease_seconds=worker_lease,
    )
    _serve(lambda: run_region(config))


@main.command()
@click.argument("modules", nargs=-1, required=True)
@nats_options
@click.option("--region", default="default", show_default=True, help="Region to join.")
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(1, 10_000),
    default=8,
    show_default=True,
    help="Attempts run at once.",
)
@click.option(
    "--pool",
    type=click.Choice(["async", "thread", "process"]),
    default="async",
    show_default=True,
    help="Where sync functions run: threads (async, thread) or child processes.",
)
@click.option(
    "--drain-grace",
    type=click.FloatRange(0, 86_400),
    default=30.0,
    show_default=True,
    help="On SIGTERM, seconds running tasks get to finish.",
)
@click.option("--worker-id", default=None, help="Worker id [default: host-pid-random].")
@click.pass_context
def worker(
    ctx: click.Context,
    modules: tuple[str, ...],
    nats_url: str | None,
    prefix: str,
    region: str,
    concurrency: int,
    pool: str,
    drain_grace: float,
    worker_id: str | None,
) -> None:
    """Run a worker for the tasks declared in MODULES (e.g. myapp.tasks).

    SIGTERM or Ctrl-C drains: nothing new is taken, running tasks get --drain-grace
    seconds, then the worker exits 0. A second signal cancels what still runs.
    """
    _service_logging(ctx)
    ctx.meta["tierq.prefix"] = prefix
    from .worker.main import serve

    config = WorkerConfig(
        nats=_nats_config(nats_url, prefix),
        modules=modules,
        region=region,
        concurrency=concurrency,
        pool=pool,
        worker_id=worker_id,
        drain_grace=drain_grace,
    )
    stats = _run(serve(config))
    if stats.stuck_threads:
        # A sync task that ignored its cancel flag still holds its thread, and the interpreter
        # would join it at exit; its attempt was already reported, so leave without it.
        logging.getLogger("tierq.worker").warning(
            "%d task threads still busy after drain; exiting without them", stats.stuck_threads
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


# --- client commands ----------------------------------------------------------------------


@main.command()
@click.argument("name")
@nats_options
@click.option(
    "--args",
    "args",
    callback=_json_arg(list, "array"),
    metavar="JSON",
    help="Positional arguments as a JSON array.",
)
@click.option(
    "--kwargs",
    "kwargs",
    callback=_json_arg(dict, "object"),
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
    _client_logging(ctx)
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
    app = _client(ctx, nats_url, prefix)

    async def go() -> Task | None:
        (handle,) = await app.submit_many([spec])
        if not wait:
            out.print(handle.id, markup=False)
            return None
        err.print(f"submitted {name} as {handle.id}", markup=False)
        return await _follow(app, handle.id, name, wait_timeout)

    task = _run(_with_app(app, go()))
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
                raise WaitTimeoutError(
                    f"task {task_id} is still {task.state.value} after {wait_timeout:g} s"
                )


@main.command()
@click.argument("task_id")
@nats_options
@click.option("--json", "as_json", is_flag=True, help="Print the task record as JSON.")
@click.pass_context
def status(
    ctx: click.Context, task_id: str, nats_url: str | None, prefix: str, as_json: bool
) -> None:
    """Show one task: state, attempts, progress, result or error."""
    _client_logging(ctx)
    app = _client(ctx, nats_url, prefix)
    task = _run(_with_app(app, app.get(task_id)))
    if as_json:
        out.print(msgspec.json.encode(task).decode(), markup=False)
        return
    _print_task(task)


def _print_task(task: Task) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    style = _STATE_STYLE.get(task.state, "")
    rows: list[tuple[str, str]] = [
        ("id", task.id),
        ("name", task.spec.name),
        ("state", f"[{style}]{task.state.value}[/]"),
        ("attempt", f"{task.attempt} of {task.spec.retry.max_attempts}"),
        ("priority", str(task.priority)),
        ("queue", task.spec.queue),
        ("submitted", _when(task.submitted_at)),
    ]
    if task.workflow_id:
        rows.append(("workflow", task.workflow_id))
    if task.parents:
        rows.append(("parents", ", ".join(task.parents)))
    if task.region or task.worker:
        rows.append(("running on", f"{task.region or '?'} / {task.worker or '?'}"))
    if task.progress or task.progress_message:
        rows.append(("progress", f"{task.progress:.0%} {task.progress_message or ''}".rstrip()))
    if task.state is TaskState.SUCCEEDED:
        rows.append(("result", _short(json.dumps(task.result))))
    if task.error is not None:
        rows.append(("error", f"{task.error.type}: {task.error.message}"))
    for key, value in rows:
        grid.add_row(key, value if key == "state" else _escape(value))
    out.print(grid)
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
                _when(h.started_at),
                _when(h.ended_at),
                (h.outcome or "") + (f" ({h.error.type})" if h.error else ""),
            )
        out.print(table)
    if task.error is not None and task.error.traceback:
        out.print(task.error.traceback.rstrip(), markup=False, style="dim")


@main.command()
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
) -> None:
    """List tasks, oldest first."""
    _client_logging(ctx)
    app = _client(ctx, nats_url, prefix)
    page = _run(
        _with_app(
            app,
            app.list_tasks(
                state=state,
                name=name,
                queue=queue,
                workflow_id=workflow_id,
                limit=limit,
                cursor=cursor,
            ),
        )
    )
    if as_json:
        for task in page.tasks:
            out.print(msgspec.json.encode(task).decode(), markup=False)
        return
    table = Table("id", "name", "state", "attempt", "priority", "progress", "submitted")
    for task in page.tasks:
        style = _STATE_STYLE.get(task.state, "")
        table.add_row(
            task.id,
            _escape(task.spec.name),
            f"[{style}]{task.state.value}[/]",
            str(task.attempt),
            str(task.priority),
            f"{task.progress:.0%}" if task.progress else "",
            _when(task.submitted_at),
        )
    out.print(table)
    if not page.tasks:
        err.print("no tasks match")
    if page.next_cursor:
        err.print(f"more: tierq tasks --cursor {page.next_cursor}", markup=False)


@main.command()
@click.argument("workflow_id")
@nats_options
@click.option("--json", "as_json", is_flag=True, help="Print the workflow graph as JSON.")
@click.pass_context
def workflows(
    ctx: click.Context, workflow_id: str, nats_url: str | None, prefix: str, as_json: bool
) -> None:
    """Show a workflow as a tree of its tasks, parents above children."""
    _client_logging(ctx)
    app = _client(ctx, nats_url, prefix)
    view = _run(_with_app(app, app.get_workflow(workflow_id)))
    if as_json:
        out.print(msgspec.json.encode(view).decode(), markup=False)
        return
    out.print(workflow_tree(view))


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
        f"[bold]{_escape(view.name)}[/] {view.id}{state}  {view.done}/{view.total} done"
        + (f"  ({counts})" if counts else "")
    )
    drawn: set[str] = set()

    def label(task_id: str) -> str:
        node = nodes.get(task_id)
        if node is None:
            return task_id
        style = _STATE_STYLE.get(node.state, "") if node.state else "dim"
        state_text = node.state.value if node.state else "evicted"
        return (
            f"[bold]{_escape(node.key)}[/] {_escape(node.name)} "
            f"[{style}]{state_text}[/] [dim]{task_id}[/]"
        )

    def draw(branch: Tree, task_id: str) -> None:
        if task_id in drawn:
            key = nodes[task_id].key if task_id in nodes else task_id
            branch.add(f"[dim]{_escape(key)} (shown above)[/]")
            return
        drawn.add(task_id)
        sub = branch.add(label(task_id))
        for child in children.get(task_id, []):
            draw(sub, child)

    for node in view.nodes:
        if node.task_id not in has_parent:
            draw(root, node.task_id)
    return root


@main.command()
@click.argument("ident")
@nats_options
@click.option("--workflow", is_flag=True, help="IDENT is a workflow: cancel all its tasks.")
@click.pass_context
def cancel(
    ctx: click.Context, ident: str, nats_url: str | None, prefix: str, workflow: bool
) -> None:
    """Cancel a task (queued or running) or, with --workflow, a whole workflow."""
    _client_logging(ctx)
    app = _client(ctx, nats_url, prefix)

    async def go() -> None:
        master = await app.master()
        if workflow:
            await master.cancel_workflow(ident)
        else:
            await master.cancel(ident)

    _run(_with_app(app, go()))
    err.print(f"cancelled {ident}", markup=False)


# --- formatting ---------------------------------------------------------------------------


def _when(ts: float | None) -> str:
    if not ts:
        return ""
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _short(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@functools.cache
def _markup_escape() -> Callable[[str], str]:
    from rich.markup import escape

    return escape


def _escape(text: str) -> str:
    return _markup_escape()(text)
