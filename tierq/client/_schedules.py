"""Schedules from Python: declared in code, or managed at run time.

Declared in code (registered by every worker that loads the app, when it starts; a stored
schedule is never overwritten from code, a difference is logged as a warning)::

    @app.task(schedule="*/5 * * * *")
    async def sweep() -> None: ...

    app.schedule("nightly-report", report, "eu", cron="30 2 * * *", timezone="Europe/Berlin")

Managed at run time (``app.schedules``)::

    await app.schedules.create("tick", "jobs.tick", every=60, overlap="allow_all")
    await app.schedules.pause("tick", note="maintenance")
    await app.schedules.trigger("tick")
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from ..core import ScheduleSpec
from ..core.model import TaskSpec, WorkflowSpec
from ..core.schedule_records import check_schedule_id, check_schedule_spec
from ..cronspec import check_cron
from ..errors import ChangedSinceReadError, InvalidRequestError
from ..protocol import ScheduleReply, ScheduleRequest, SchedulesReply, ScheduleView
from ..rpc import MasterClient
from ._handles import warn_unserved
from ._task import TaskDef, build_spec

if TYPE_CHECKING:
    from ._workflow import Workflow

__all__ = ["Schedules", "changed_spec", "declare_all", "schedule_spec"]

log = logging.getLogger("tierq.schedules")

#: How many times a keyword ``update`` reads and writes before it gives up on a schedule that
#: keeps changing under it.
UPDATE_TRIES = 5

#: Keyword arguments of :func:`schedule_spec` that shape the schedule, not the task.
SCHEDULE_OPTIONS = frozenset(
    {
        "cron",
        "every",
        "offset",
        "timezone",
        "jitter",
        "start_at",
        "end_at",
        "overlap",
        "catchup_window",
        "catchup",
        "fire_time_arg",
    }
)


def schedule_spec(
    target: TaskDef[Any, Any] | str | Workflow | WorkflowSpec,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    **options: Any,
) -> ScheduleSpec:
    """A schedule of ``target`` (a task, by definition or name, with its arguments; or a
    workflow) with ``options`` (cron or every, timezone, overlap, catchup, ...)."""
    unknown = set(options) - SCHEDULE_OPTIONS
    if unknown:
        raise TypeError(f"unknown schedule options: {', '.join(sorted(unknown))}")
    task: TaskSpec | None = None
    workflow: WorkflowSpec | None = None
    if isinstance(target, WorkflowSpec):
        workflow = target
    elif isinstance(target, TaskDef | str):
        task = build_spec(target, args, dict(kwargs or {}), {})
    else:
        workflow = target.spec()
    spec = check_schedule_spec(ScheduleSpec(task=task, workflow=workflow, **options))
    check_cron(spec)  # a typo in code fails here, where it was written
    return spec


def changed_spec(
    spec: ScheduleSpec,
    *,
    args: list[Any] | tuple[Any, ...] | None = None,
    kwargs: dict[str, Any] | None = None,
    **options: Any,
) -> ScheduleSpec:
    """``spec`` with the schedule ``options`` given (``None`` clears an optional one, such
    as ``end_at``) and, for a task target, new ``args``/``kwargs``. ``cron=`` replaces an
    interval (``every``, ``offset``) and ``every=`` a cron; giving both is an error."""
    unknown = set(options) - SCHEDULE_OPTIONS
    if unknown:
        raise TypeError(f"unknown schedule options: {', '.join(sorted(unknown))}")
    if options.get("cron") is not None and options.get("every") is not None:
        raise InvalidRequestError("schedule: give cron or every, not both", field="cron")
    if options.get("cron") is not None:
        options = {"every": None, "offset": 0.0, **options}
    if options.get("every") is not None:
        options = {"cron": None, **options}
    if args is not None or kwargs is not None:
        if spec.task is None:
            raise InvalidRequestError("schedule: args/kwargs: it runs a workflow", field="args")
        options["task"] = msgspec.structs.replace(
            spec.task,
            args=spec.task.args if args is None else list(args),
            kwargs=spec.task.kwargs if kwargs is None else dict(kwargs),
        )
    new = check_schedule_spec(msgspec.structs.replace(spec, **options))
    check_cron(new)
    return new


class Schedules:
    """Run-time management of the master's schedules (``app.schedules``)."""

    def __init__(self, master: Callable[[], Awaitable[MasterClient]]) -> None:
        self._master = master

    async def _call(self, op: str, req: ScheduleRequest) -> ScheduleReply:
        client = await self._master()
        return await client.call(f"schedule_{op}", req, ScheduleReply)

    async def create(
        self,
        schedule_id: str,
        target: TaskDef[Any, Any] | str | Workflow | WorkflowSpec,
        *args: Any,
        **kwargs: Any,
    ) -> ScheduleView:
        """Make a schedule; keyword arguments are schedule options (``cron=``, ``every=``,
        ``overlap=``...) or the task's keyword arguments."""
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in SCHEDULE_OPTIONS}
        spec = schedule_spec(target, args, kwargs, **options)
        return await self.put(schedule_id, spec)

    async def put(self, schedule_id: str, spec: ScheduleSpec) -> ScheduleView:
        """Make a schedule from a full :class:`~tierq.core.ScheduleSpec`."""
        reply = await self._call("create", ScheduleRequest(id=schedule_id, spec=spec))
        assert reply.schedule is not None
        warn_unserved(reply.schedule.warnings)
        return reply.schedule

    async def update(
        self, schedule_id: str, spec: ScheduleSpec | None = None, **changes: Any
    ) -> ScheduleView:
        """Change a schedule: a whole new ``spec``, or only what changes as keywords (see
        :func:`changed_spec`: ``cron=``, ``every=``, ``end_at=None``, ``args=``...), the rest
        kept from the stored spec.

        Keyword changes are made to the spec as read, and stored only if nobody changed the
        schedule in between (the master compares ``updated_at``); if someone did, the spec is
        read again and the changes made to it, up to ``UPDATE_TRIES`` times, then
        ChangedSinceReadError. A whole ``spec`` replaces what is stored."""
        if spec is not None:
            if changes:
                raise TypeError("update: give a whole spec or keyword changes, not both")
            return await self._update(ScheduleRequest(id=schedule_id, spec=spec))
        if not changes:
            raise TypeError("update: give a spec, or the options to change as keywords")
        attempt = 0
        while True:
            attempt += 1
            stored = await self.get(schedule_id)
            req = ScheduleRequest(
                id=schedule_id,
                spec=changed_spec(stored.spec, **changes),
                if_updated_at=stored.updated_at,
            )
            try:
                return await self._update(req)
            except ChangedSinceReadError:
                if attempt >= UPDATE_TRIES:
                    raise

    async def _update(self, req: ScheduleRequest) -> ScheduleView:
        reply = await self._call("update", req)
        assert reply.schedule is not None
        warn_unserved(reply.schedule.warnings)
        return reply.schedule

    async def delete(self, schedule_id: str) -> None:
        await self._call("delete", ScheduleRequest(id=schedule_id))

    async def pause(self, schedule_id: str, note: str | None = None) -> ScheduleView:
        reply = await self._call("pause", ScheduleRequest(id=schedule_id, note=note))
        assert reply.schedule is not None
        return reply.schedule

    async def resume(self, schedule_id: str) -> ScheduleView:
        reply = await self._call("resume", ScheduleRequest(id=schedule_id))
        assert reply.schedule is not None
        return reply.schedule

    async def trigger(self, schedule_id: str) -> list[str]:
        """Fire now (the overlap policy applies); the ids of the runs started."""
        return (await self._call("trigger", ScheduleRequest(id=schedule_id))).runs

    async def backfill(
        self, schedule_id: str, start: float, end: float, *, rerun: bool = False
    ) -> list[str]:
        """Run every fire time in ``[start, end]`` (epoch seconds, in the past) once; the ids
        of the runs started.

        A fire time whose run was started before (by the schedule or an earlier backfill) is
        left out, with a warning logged, unless ``rerun``: backfilling the same range twice
        runs nothing twice. The schedule remembers its latest 10,000 such fire times.
        """
        return (await self.backfill_reply(schedule_id, start, end, rerun=rerun)).runs

    async def backfill_reply(
        self, schedule_id: str, start: float, end: float, *, rerun: bool = False
    ) -> ScheduleReply:
        """:meth:`backfill`, with the whole reply: ``runs`` and ``already_ran`` (the fire
        times left out)."""
        req = ScheduleRequest(id=schedule_id, start=start, end=end, rerun=rerun)
        reply = await self._call("backfill", req)
        if reply.already_ran:
            log.warning(
                "schedule %s: %d fire times in the range ran before and were left out "
                "(rerun=True runs them again)",
                schedule_id,
                len(reply.already_ran),
            )
        return reply

    async def get(self, schedule_id: str) -> ScheduleView:
        reply = await self._call("get", ScheduleRequest(id=schedule_id))
        if reply.schedule is None:
            from ..errors import NotFoundError

            raise NotFoundError(f"no schedule {schedule_id!r}", ids=(schedule_id,))
        return reply.schedule

    async def list(self) -> list[ScheduleView]:
        """Every schedule, by id (fetched a page at a time)."""
        client = await self._master()
        out: list[ScheduleView] = []
        cursor: str | None = None
        while True:
            req = ScheduleRequest(cursor=cursor)
            page = await client.call("schedule_list", req, SchedulesReply)
            out += page.schedules
            if page.next_cursor is None:
                return out
            cursor = page.next_cursor


async def declare_all(
    master: MasterClient, declared: dict[str, ScheduleSpec]
) -> dict[str, ScheduleReply]:
    """Register schedules declared in code: each new one is made; one stored already is
    left as it is, and a difference is logged as a warning (with how they differ)."""
    out: dict[str, ScheduleReply] = {}
    for sid in sorted(declared):
        check_schedule_id(sid)
        reply = await master.call(
            "schedule_declare", ScheduleRequest(id=sid, spec=declared[sid]), ScheduleReply
        )
        out[sid] = reply
        if reply.status == "differs":
            log.warning(
                "schedule %r declared in code differs from the stored one, which stays "
                "(change it with `tierq schedules update` or delete it to take the code's): %s",
                sid,
                "; ".join(reply.diff),
            )
        elif reply.status == "created":
            log.info("schedule %r declared in code registered", sid)
    return out
