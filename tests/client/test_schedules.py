"""Schedules through the SDK against a real master, region and worker: made, fired, paused,
triggered, backfilled and deleted at run time; declared in code and registered by a worker,
a differing stored one kept and the difference logged."""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import textwrap
import time
import uuid
from pathlib import Path
from types import ModuleType

import pytest

import tierq
from tierq.core import ScheduleSpec, TaskSpec
from tierq.errors import ConflictError, InvalidRequestError, NotFoundError
from tierq.protocol import ScheduleRequest, ScheduleView
from tierq.testing import LocalCluster

pytestmark = pytest.mark.integration


async def _until(check, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    """Poll ``check`` (an async callable) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_a_schedule_runs_pauses_triggers_backfills_and_goes(
    cluster: LocalCluster, app: tierq.App, tasks_module: ModuleType
) -> None:
    await cluster.start_worker(tasks_module.__name__)
    with pytest.raises(InvalidRequestError, match="cron"):
        await app.schedules.create("bad", "s.record", cron="not cron")
    view = await app.schedules.create(
        "every-second", "s.record", every=1, overlap="allow_all", fire_time_arg="label"
    )
    assert view.next_fire is not None and view.source == "api"

    async def three_ran() -> bool:
        return len(tasks_module.order) >= 3

    await _until(three_ran)
    view = await app.schedules.pause("every-second", note="maintenance")
    assert view.paused and view.note == "maintenance"
    ran = [r for r in view.recent if r.outcome == "started"]
    # Each run's task got its own fire time, whole seconds one apart.
    fire_times = [r.fire_time for r in ran]
    assert fire_times == sorted(set(fire_times))
    assert all(b - a == 1.0 for a, b in itertools.pairwise(fire_times))
    assert set(fire_times) <= set(tasks_module.order)

    runs = await app.schedules.trigger("every-second")
    assert len(runs) == 1
    assert (await app.get(runs[0])).spec.name == "s.record"
    now = float(int(time.time()))
    filled = await app.schedules.backfill("every-second", now - 3600, now - 3597)
    assert len(filled) == 4
    # Again, wider: the four that ran are left out, and said so.
    wider = await app.schedules.backfill_reply("every-second", now - 3601, now - 3596)
    assert len(wider.runs) == 2 and wider.already_ran == [now - 3600 + k for k in range(4)]
    assert len(await app.schedules.backfill("every-second", now - 3601, now - 3596)) == 0
    assert (
        len(await app.schedules.backfill("every-second", now - 3600, now - 3600, rerun=True)) == 1
    )
    listed = {s.id: s for s in await app.schedules.list()}
    assert listed["every-second"].paused
    await app.schedules.delete("every-second")
    with pytest.raises(NotFoundError):
        await app.schedules.get("every-second")


DECLARED = """
import tierq

app = tierq.App()


@app.task(name="d.tick", schedule="*/5 * * * *")
def tick():
    return None


@app.task(name="d.report")
def report(region, detail=False):
    return region


app.schedule("nightly", report, "eu", detail=True, cron="30 2 * * *",
             timezone="Europe/Berlin", overlap="skip")
"""


def _module(tmp_path: Path, source: str) -> ModuleType:
    name = f"tq_sched_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    sys.path.insert(0, str(tmp_path))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(tmp_path))


async def test_schedules_declared_in_code_are_registered_not_overwritten(
    cluster: LocalCluster, app: tierq.App, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = _module(tmp_path, DECLARED)
    await cluster.start_worker(first.__name__)

    async def both() -> dict[str, object]:
        got = {s.id: s for s in await app.schedules.list()}
        return got if {"d.tick", "nightly"} <= set(got) else {}

    views = await _until(both)
    nightly = views["nightly"]
    assert nightly.source == "code"  # type: ignore[attr-defined]
    assert nightly.spec.task == TaskSpec(  # type: ignore[attr-defined]
        name="d.report", args=["eu"], kwargs={"detail": True}
    )
    assert nightly.spec.timezone == "Europe/Berlin"  # type: ignore[attr-defined]
    # Someone changes it at run time; a worker with the old code starts again.
    changed = ScheduleSpec(cron="0 3 * * *", timezone="Europe/Berlin", task=TaskSpec(name="x"))
    await app.schedules.update("nightly", changed)
    second = _module(tmp_path, DECLARED)
    caplog.set_level(logging.WARNING, logger="tierq.schedules")
    await cluster.start_worker(second.__name__)

    async def warned() -> bool:
        return any(
            "nightly" in r.getMessage() and "differs" in r.getMessage() for r in caplog.records
        )

    await _until(warned)
    message = next(r.getMessage() for r in caplog.records if "nightly" in r.getMessage())
    assert "cron: '0 3 * * *' -> '30 2 * * *'" in message
    stored = await app.schedules.get("nightly")
    assert stored.spec == changed  # kept, not overwritten
    assert not any("d.tick" in r.getMessage() for r in caplog.records)  # same: no warning


async def test_a_schedule_of_a_task_no_worker_runs_is_flagged(
    cluster: LocalCluster,
    app: tierq.App,
    tasks_module: ModuleType,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Like a submit, a schedule whose task no live worker runs says so: on the view (made,
    changed, read) and as a warning logged by the SDK; a served one has no warning."""
    await cluster.start_worker(tasks_module.__name__)

    await app.schedules.create("ok", "s.record", every=3600)  # maybe warned: too early

    async def served() -> bool:
        return not (await app.schedules.get("ok")).warnings

    await _until(served)  # once the worker's region has told the master its task types
    with caplog.at_level(logging.WARNING, logger="tierq.client"):
        typo = await app.schedules.create("typo", "s.recrod", every=3600)
    assert len(typo.warnings) == 1
    assert "no live worker runs task type 's.recrod'" in typo.warnings[0]
    assert "s.recrod" in caplog.text
    assert (await app.schedules.get("typo")).warnings == typo.warnings
    fixed = ScheduleSpec(every=3600, task=TaskSpec(name="s.record"))
    assert (await app.schedules.update("typo", fixed)).warnings == []


async def test_a_schedule_is_changed_by_keyword(cluster: LocalCluster, app: tierq.App) -> None:
    """``update(id, cron=...)``: what is named changes, the rest is kept; a cron replaces an
    interval, None clears an optional field, args change the task's arguments."""
    await app.schedules.create(
        "kw", "s.record", "a", every=60, offset=5, end_at=4102444800.0, overlap="allow_all"
    )
    view = await app.schedules.update("kw", cron="30 2 * * *", timezone="Europe/Berlin")
    spec = view.spec
    assert (spec.cron, spec.timezone, spec.every, spec.offset) == (
        "30 2 * * *", "Europe/Berlin", None, 0.0,
    )  # fmt: skip
    assert spec.overlap == "allow_all" and spec.end_at == 4102444800.0
    assert spec.task is not None and spec.task.args == ["a"]
    view = await app.schedules.update("kw", end_at=None, args=["b"], kwargs={"label": "x"})
    assert view.spec.end_at is None and view.spec.cron == "30 2 * * *"
    assert view.spec.task is not None and view.spec.task.args == ["b"]
    assert view.spec.task.kwargs == {"label": "x"}
    assert (await app.schedules.get("kw")).spec == view.spec
    with pytest.raises(TypeError, match="unknown schedule options: cronn"):
        await app.schedules.update("kw", cronn="* * * * *")
    with pytest.raises(TypeError, match="not both"):
        await app.schedules.update("kw", view.spec, every=5)
    with pytest.raises(InvalidRequestError, match="cron or every"):
        await app.schedules.update("kw", cron="* * * * *", every=5)
    with pytest.raises(InvalidRequestError, match="cron"):
        await app.schedules.update("kw", cron="61 * * * *")
    with pytest.raises(NotFoundError):
        await app.schedules.update("nope", every=5)
    assert (await app.schedules.get("kw")).spec == view.spec  # the refused ones changed nothing


async def test_a_keyword_update_keeps_a_change_made_in_between(
    cluster: LocalCluster, app: tierq.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another client changes the schedule between this update's read and its write: the
    write is refused by the master and made again on the new spec, so both changes stay."""
    await app.schedules.create("race", "s.record", every=60)
    real_get = app.schedules.get
    reads = 0

    async def read_then_someone_writes(schedule_id: str) -> ScheduleView:
        nonlocal reads
        view = await real_get(schedule_id)
        reads += 1
        if reads == 1:
            async with tierq.App(cluster.nats_url) as other:
                await other.schedules.update(schedule_id, jitter=5.0)
        return view

    monkeypatch.setattr(app.schedules, "get", read_then_someone_writes)
    view = await app.schedules.update("race", every=120)
    assert reads == 2
    assert view.spec.every == 120 and view.spec.jitter == 5.0
    # Stale, straight to the master: refused, nothing changed.
    stale = ScheduleRequest(id="race", spec=view.spec, if_updated_at=view.updated_at - 1)
    with pytest.raises(ConflictError, match="changed since it was read"):
        await app.schedules._call("update", stale)
    assert (await real_get("race")).updated_at == view.updated_at
