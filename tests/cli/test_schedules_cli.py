"""``tierq schedules`` against the real stack, run as a subprocess like a user would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tierq
from tierq.testing import LocalCluster

from .conftest import tierq as run_tierq

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


async def test_schedules_from_the_command_line(
    cluster: LocalCluster, module_dir: tuple[str, Path]
) -> None:
    url = ("--nats", cluster.nats_url)
    made = await run_tierq(
        "schedules", *url, "create", "nightly", "c.add", "--cron", "30 2 * * *",
        "--timezone", "Europe/Berlin", "--kwargs", '{"x": 1, "y": 2}',
    )  # fmt: skip
    assert made.code == 0, made.stderr
    assert "schedule nightly: next fire" in made.stderr
    bad = await run_tierq("schedules", *url, "create", "b", "c.add", "--cron", "99 * * * *")
    assert bad.code == 2 and "cron" in bad.stderr
    typo = await run_tierq("schedules", *url, "create", "typo", "c.nosuch", "--every", "3600")
    assert typo.code == 0, typo.stderr  # made, and the user told why its runs would wait
    assert "warning: no live worker runs task type 'c.nosuch'" in typo.stderr
    assert (await run_tierq("schedules", *url, "delete", "typo")).code == 0
    listed = await run_tierq("schedules", *url)
    assert listed.code == 0, listed.stderr
    assert "nightly" in listed.stdout and "30 2 * * * (Europe/Berlin)" in listed.stdout
    paused = await run_tierq("schedules", *url, "pause", "nightly", "--note", "freeze")
    assert paused.code == 0, paused.stderr
    shown = json.loads((await run_tierq("schedules", *url, "show", "nightly")).stdout)
    assert shown["paused"] is True and shown["note"] == "freeze"
    trig = await run_tierq("schedules", *url, "trigger", "nightly")
    assert trig.code == 0, trig.stderr
    [run_id] = trig.stdout.split()
    async with tierq.App(cluster.nats_url) as app:
        task = await app.get(run_id)
        assert task.spec.name == "c.add" and task.spec.kwargs == {"x": 1, "y": 2}
    filled = await run_tierq(
        "schedules", *url, "backfill", "nightly", "2026-01-01T00:00", "2026-01-03T23:59"
    )
    assert filled.code == 0, filled.stderr
    assert len(filled.stdout.split()) == 3  # one 02:30 Berlin a day
    again = await run_tierq(
        "schedules", *url, "backfill", "nightly", "2026-01-01T00:00", "2026-01-04T23:59"
    )
    assert again.code == 0, again.stderr
    assert len(again.stdout.split()) == 1
    assert "1 runs; 3 fire times ran before, left out (--rerun runs them)" in again.stderr
    forced = await run_tierq(
        "schedules", *url, "backfill", "nightly", "2026-01-01T00:00", "2026-01-01T23:59", "--rerun"
    )
    assert forced.code == 0 and len(forced.stdout.split()) == 1, forced.stderr
    resumed = await run_tierq("schedules", *url, "resume", "nightly")
    assert resumed.code == 0 and "next fire" in resumed.stderr
    gone = await run_tierq("schedules", *url, "delete", "nightly")
    assert gone.code == 0, gone.stderr
    missing = await run_tierq("schedules", *url, "show", "nightly")
    assert missing.code != 0 and "nightly" in missing.stderr
    as_json = await run_tierq("schedules", *url, "--json")
    assert json.loads(as_json.stdout) == []


async def test_schedules_are_changed_and_bad_input_named_from_the_command_line(
    cluster: LocalCluster, module_dir: tuple[str, Path]
) -> None:
    url = ("--nats", cluster.nats_url)
    made = await run_tierq(
        "schedules", *url, "create", "q", "c.add", "--cron", "*/15 * * * *",
        "--timezone", "America/New_York", "--end-at", "2099-01-01", "--fire-time-arg", "x",
        "--args", "[1]",
    )  # fmt: skip
    assert made.code == 0, made.stderr
    # The next fire in the schedule's own zone, with its abbreviation (EST or EDT).
    # (No worker runs c.add here: a warning line follows, which says so.)
    assert made.stderr.splitlines()[0].endswith(("EST", "EDT")), made.stderr
    changed = await run_tierq(
        "schedules", *url, "update", "q", "--every", "90", "--end-at", "none",
        "--kwargs", '{"y": 2}',
    )  # fmt: skip
    assert changed.code == 0, changed.stderr
    spec = json.loads((await run_tierq("schedules", *url, "show", "q")).stdout)["spec"]
    assert spec["every"] == 90 and "cron" not in spec and "end_at" not in spec
    # What was not given is kept: the task's args, the fire-time kwarg.
    assert spec["task"]["kwargs"] == {"y": 2} and spec["task"]["args"] == [1]
    assert spec["fire_time_arg"] == "x"
    again = await run_tierq("schedules", *url, "update", "q", "--cron", "0 9 * * MON-FRI")
    assert again.code == 0, again.stderr
    spec = json.loads((await run_tierq("schedules", *url, "show", "q")).stdout)["spec"]
    assert spec["cron"] == "0 9 * * MON-FRI" and "every" not in spec
    # Each bad input is refused, naming the field, and changes nothing.
    for args, field in [
        (("create", "z", "c.add", "--every", "0.5"), "every"),
        (("create", "z", "c.add", "--every", "60", "--jitter", "1e12"), "jitter"),
        (("create", "z", "c.add", "--every", "60", "--end-at", "2020-01-01"), "end_at"),
        (("create", "z", "c.add", "--cron", "0 0 30 2 *"), "cron"),
        (("create", "z", "c.add", "--every", "60", "--start-at", "soon"), "--start-at"),
        (("update", "q", "--every", "0.5"), "every"),
        (("update", "q", "--timezone", "Nowhere/Land"), "timezone"),
        (("update", "q", "--every", "60", "--cron", "* * * * *"), "--cron or --every"),
        (("update", "q"), "nothing to change"),
        (("update", "nosuch", "--every", "60"), "nosuch"),
    ]:
        bad = await run_tierq("schedules", *url, *args)
        assert bad.code != 0 and field in bad.stderr, (args, bad.stderr)
    listed = json.loads((await run_tierq("schedules", *url, "--json")).stdout)
    assert [v["id"] for v in listed] == ["q"]
    assert listed[0]["spec"]["cron"] == "0 9 * * MON-FRI"
