"""``tierq schedules``: list, show, create, pause, resume, trigger, backfill and delete the
master's schedules."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
    logging.getLogger("tierq.client").setLevel(logging.ERROR)  # its warnings are printed here
    app = client_app(ctx, nats_url, prefix)

    async def go() -> T:
        return await fn(app)

    return run(with_app(app, go()))


def _instant_option(ctx: click.Context, param: click.Parameter, value: str | None) -> object:
    """``--start-at``/``--end-at``: an instant, or ``none`` (update: clear it)."""
    if value is None:
        return None
    return _CLEAR if value.lower() == "none" else _instant(value)


_CLEAR = object()
_TIME_HELP = "ISO 8601 (UTC when it names no zone) or epoch seconds"
_START = click.option(
    "--start-at", callback=_instant_option, help=f"No fire before this time ({_TIME_HELP})."
)
_END = click.option(
    "--end-at", callback=_instant_option, help=f"No fire after this time ({_TIME_HELP})."
)
_FIRE_TIME_ARG = click.option(
    "--fire-time-arg", default=None, help="Task kwarg that receives the fire time (epoch s)."
)


def _json_or_none(
    kind: type[Any], what: str
) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """Like ``json_arg``, but None when the option is not given (update: keep the stored)."""
    parse = json_arg(kind, what)
    return lambda ctx, param, value: None if value is None else parse(ctx, param, value)


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
            _next_fire(v) if not v.paused else "-",
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


def _next_fire(v: ScheduleView) -> str:
    """The next fire time; a cron schedule's in its own zone, with the zone's abbreviation,
    so the two passes of an autumn repeated hour read apart (01:30 EDT, then 01:30 EST)."""
    if v.next_fire is None:
        return "-"
    if v.spec.cron is None:
        return when(v.next_fire)
    try:
        local = dt.datetime.fromtimestamp(v.next_fire, ZoneInfo(v.spec.timezone))
    except (ValueError, OverflowError, OSError, ZoneInfoNotFoundError):
        return when(v.next_fire)
    return local.strftime("%Y-%m-%d %H:%M:%S %Z")


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
@_START
@_END
@_FIRE_TIME_ARG
@click.option("--args", "args_", callback=json_arg(list, "array"), help="Task args (JSON array).")
@click.option("--kwargs", callback=json_arg(dict, "object"), help="Task kwargs (JSON object).")
@click.pass_context
def create(ctx: click.Context, /, schedule_id: str, task_name: str, **opts: Any) -> None:
    """Make a schedule of TASK_NAME."""
    args, kwargs = opts.pop("args_"), opts.pop("kwargs")
    opts["timezone"] = opts.pop("tz")
    options = {k: v for k, v in opts.items() if v is not None and v is not _CLEAR}

    async def go(app: App) -> ScheduleView:
        return await app.schedules.create(schedule_id, task_name, *args, **kwargs, **options)

    view = _call(ctx, *_nats(ctx), go)
    err.print(f"schedule {schedule_id}: next fire {_next_fire(view)}", markup=False)
    _warn(view)


def _warn(view: ScheduleView) -> None:
    for warning in view.warnings:
        err.print(f"warning: {warning}", markup=False)


@schedules.command("update")
@click.argument("schedule_id")
@click.option("--cron", default=None, help="New cron expression (replaces an interval).")
@click.option("--every", type=_POSITIVE, default=None, help="New interval (replaces a cron).")
@click.option("--offset", type=_SECONDS, default=None, help="Interval offset, seconds.")
@click.option("--timezone", "tz", default=None, help="IANA zone of the cron expression.")
@click.option("--jitter", type=_SECONDS, default=None, help="Up to this many seconds late.")
@click.option("--overlap", type=click.Choice(["skip", "buffer_one", "allow_all", "cancel_other"]))
@click.option("--catchup-window", type=_SECONDS, default=None, help="Seconds.")
@click.option("--catchup", type=click.Choice(["all", "latest"]), default=None)
@_START
@_END
@_FIRE_TIME_ARG
@click.option("--args", "args_", callback=_json_or_none(list, "array"), help="New task args.")
@click.option("--kwargs", callback=_json_or_none(dict, "object"), help="New task kwargs.")
@click.pass_context
def update(ctx: click.Context, /, schedule_id: str, **opts: Any) -> None:
    """Change a schedule: the options given replace the stored ones (``none`` clears
    --start-at/--end-at); fires go on from the new spec."""
    args, kwargs = opts.pop("args_"), opts.pop("kwargs")
    opts["timezone"] = opts.pop("tz")
    changes = {k: (None if v is _CLEAR else v) for k, v in opts.items() if v is not None}
    if opts["cron"] is not None and opts["every"] is not None:
        raise click.UsageError("give --cron or --every, not both")
    if args is not None:
        changes["args"] = args
    if kwargs is not None:
        changes["kwargs"] = kwargs
    if not changes:
        raise click.UsageError("nothing to change: give at least one option")

    async def go(app: App) -> ScheduleView:
        return await app.schedules.update(schedule_id, **changes)

    view = _call(ctx, *_nats(ctx), go)
    err.print(f"schedule {schedule_id} updated: next fire {_next_fire(view)}", markup=False)
    _warn(view)


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
    err.print(f"schedule {schedule_id} resumed: next fire {_next_fire(view)}", markup=False)


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
@click.option("--rerun", is_flag=True, help="Also run the fire times that ran before.")
@click.pass_context
def backfill(ctx: click.Context, schedule_id: str, start: str, end: str, rerun: bool) -> None:
    """Run every fire time from START to END (ISO 8601, UTC by default, or epoch seconds),
    once each; prints the runs' ids. A fire time that ran before is left out unless --rerun."""
    first, last = _instant(start), _instant(end)
    reply = _call(
        ctx,
        *_nats(ctx),
        lambda app: app.schedules.backfill_reply(schedule_id, first, last, rerun=rerun),
    )
    for run_id in reply.runs:
        out.print(run_id, markup=False)
    note = f"schedule {schedule_id}: {len(reply.runs)} runs"
    if reply.already_ran:
        note += f"; {len(reply.already_ran)} fire times ran before, left out (--rerun runs them)"
    err.print(note, markup=False)


@schedules.command("delete")
@click.argument("schedule_id")
@click.pass_context
def delete(ctx: click.Context, schedule_id: str) -> None:
    """Forget the schedule (its runs go on)."""
    _call(ctx, *_nats(ctx), lambda app: app.schedules.delete(schedule_id))
    err.print(f"schedule {schedule_id} deleted", markup=False)
