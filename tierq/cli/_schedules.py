"""``tierq schedules``: list, show, create, pause, resume, trigger, backfill and delete the
master's schedules."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
import msgspec
from rich.table import Table

from ..client import App
from ..protocol import ScheduleView
from ._common import (
    client_app,
    client_logging,
    err,
    escape,
    json_arg,
    nats_options,
    out,
    run,
    when,
    with_app,
)

__all__ = ["schedules"]

T = TypeVar("T")
_SECONDS = click.FloatRange(min=0)
_POSITIVE = click.FloatRange(min=0, min_open=True)


def _call(
    ctx: click.Context, nats_url: str | None, prefix: str, fn: Callable[[App], Awaitable[T]]
) -> T:
    client_logging(ctx)
    app = client_app(ctx, nats_url, prefix)

    async def go() -> T:
        return await fn(app)

    return run(with_app(app, go()))


def _instant(value: str) -> float:
    """An ISO 8601 time (UTC when it names no zone) or epoch seconds."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: an ISO 8601 time or epoch seconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


@click.group(invoke_without_command=True)
@nats_options
@click.option("--json", "as_json", is_flag=True, help="The schedules as one JSON document.")
@click.pass_context
def schedules(ctx: click.Context, nats_url: str | None, prefix: str, as_json: bool) -> None:
    """The master's schedules (cron or interval). Without a subcommand: list them."""
    ctx.ensure_object(dict)
    ctx.obj["schedule_nats"] = (nats_url, prefix)
    if ctx.invoked_subcommand is not None:
        return
    views = _call(ctx, nats_url, prefix, lambda app: app.schedules.list())
    if as_json:
        out.print(msgspec.json.encode(views).decode(), markup=False)
        return
    if not views:
        err.print("no schedule", markup=False)
        return
    table = Table("schedule", "when", "target", "next fire", "last runs", "state")
    for v in views:
        table.add_row(
            escape(v.id),
            escape(_when(v)),
            escape(_target(v)),
            when(v.next_fire) if not v.paused else "-",
            escape(" ".join(_run_mark(r.outcome, r.state) for r in v.recent[-5:]) or "-"),
            escape(
                f"paused: {v.note}" if v.paused and v.note else "paused" if v.paused else "active"
            ),
        )
    out.print(table)


def _state(v: ScheduleView) -> str:
    if not v.paused:
        return "active"
    return f"paused: {v.note}" if v.note else "paused"


def _when(v: ScheduleView) -> str:
    spec = v.spec
    if spec.cron is not None:
        return f"{spec.cron} ({spec.timezone})"
    return f"every {spec.every:g} s" + (f" +{spec.offset:g}" if spec.offset else "")


def _target(v: ScheduleView) -> str:
    if v.spec.task is not None:
        return v.spec.task.name
    return f"workflow {v.spec.workflow.name}" if v.spec.workflow is not None else "-"


def _run_mark(outcome: str, state: str | None) -> str:
    return state or outcome if outcome == "started" else outcome


def _nats(ctx: click.Context) -> tuple[str | None, str]:
    nats_url, prefix = (ctx.find_root().obj or {}).get("schedule_nats", (None, "tierq"))
    return nats_url, prefix


def _show(view: ScheduleView | None) -> None:
    if view is not None:
        out.print(msgspec.json.encode(view).decode(), markup=False)


@schedules.command("show")
@click.argument("schedule_id")
@click.pass_context
def show(ctx: click.Context, schedule_id: str) -> None:
    """One schedule as JSON, with its recent runs and their states."""
    _show(_call(ctx, *_nats(ctx), lambda app: app.schedules.get(schedule_id)))


@schedules.command("create")
@click.argument("schedule_id")
@click.argument("task_name")
@click.option("--cron", default=None, help="Cron expression (5 fields, or 6 with seconds first).")
@click.option(
    "--every", type=click.FloatRange(min=0, min_open=True), default=None, help="Interval, seconds."
)
@click.option(
    "--offset", type=click.FloatRange(min=0), default=0.0, help="Interval offset, seconds."
)
@click.option("--timezone", "tz", default="UTC", help="IANA zone of the cron expression.")
@click.option(
    "--jitter", type=click.FloatRange(min=0), default=0.0, help="Up to this many seconds late."
)
@click.option(
    "--overlap",
    type=click.Choice(["skip", "buffer_one", "allow_all", "cancel_other"]),
    default="skip",
    help="What a fire does while the previous run is unfinished.",
)
@click.option("--catchup-window", type=_SECONDS, default=60.0, help="Seconds.")
@click.option("--catchup", type=click.Choice(["all", "latest"]), default="all")
@click.option("--args", "args_", callback=json_arg(list, "array"), help="Task args (JSON array).")
@click.option("--kwargs", callback=json_arg(dict, "object"), help="Task kwargs (JSON object).")
@click.pass_context
def create(ctx: click.Context, /, schedule_id: str, task_name: str, **opts: Any) -> None:
    """Make a schedule of TASK_NAME."""
    args, kwargs = opts.pop("args_"), opts.pop("kwargs")
    opts["timezone"] = opts.pop("tz")
    options = {k: v for k, v in opts.items() if v is not None}

    async def go(app: App) -> ScheduleView:
        return await app.schedules.create(schedule_id, task_name, *args, **kwargs, **options)

    view = _call(ctx, *_nats(ctx), go)
    err.print(f"schedule {schedule_id}: next fire {when(view.next_fire)}", markup=False)


@schedules.command("pause")
@click.argument("schedule_id")
@click.option("--note", default=None, help="Why (shown with the schedule).")
@click.pass_context
def pause(ctx: click.Context, schedule_id: str, note: str | None) -> None:
    """Stop firing until resumed."""
    _call(ctx, *_nats(ctx), lambda app: app.schedules.pause(schedule_id, note))
    err.print(f"schedule {schedule_id} paused", markup=False)


@schedules.command("resume")
@click.argument("schedule_id")
@click.pass_context
def resume(ctx: click.Context, schedule_id: str) -> None:
    """Fire again from the next fire time (those missed while paused do not fire)."""
    view = _call(ctx, *_nats(ctx), lambda app: app.schedules.resume(schedule_id))
    err.print(f"schedule {schedule_id} resumed: next fire {when(view.next_fire)}", markup=False)


@schedules.command("trigger")
@click.argument("schedule_id")
@click.pass_context
def trigger(ctx: click.Context, schedule_id: str) -> None:
    """Fire now (the overlap policy applies); prints the run's id."""
    runs = _call(ctx, *_nats(ctx), lambda app: app.schedules.trigger(schedule_id))
    if not runs:
        err.print(f"schedule {schedule_id}: skipped (overlap policy)", markup=False)
    for run_id in runs:
        out.print(run_id, markup=False)


@schedules.command("backfill")
@click.argument("schedule_id")
@click.argument("start")
@click.argument("end")
@click.pass_context
def backfill(ctx: click.Context, schedule_id: str, start: str, end: str) -> None:
    """Run every fire time from START to END (ISO 8601, UTC by default, or epoch seconds),
    once each; prints the runs' ids."""
    first, last = _instant(start), _instant(end)
    runs = _call(ctx, *_nats(ctx), lambda app: app.schedules.backfill(schedule_id, first, last))
    for run_id in runs:
        out.print(run_id, markup=False)
    err.print(f"schedule {schedule_id}: {len(runs)} runs", markup=False)


@schedules.command("delete")
@click.argument("schedule_id")
@click.pass_context
def delete(ctx: click.Context, schedule_id: str) -> None:
    """Forget the schedule (its runs go on)."""
    _call(ctx, *_nats(ctx), lambda app: app.schedules.delete(schedule_id))
    err.print(f"schedule {schedule_id} deleted", markup=False)
