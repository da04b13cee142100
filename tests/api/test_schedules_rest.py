"""Schedules over REST against a real master: the whole life of one, and the refusals."""

from __future__ import annotations

import pytest

from .conftest import Stack
from .support import auth_header

pytestmark = pytest.mark.integration


async def test_a_schedule_over_rest(stack: Stack) -> None:
    http = stack.http
    body = {
        "id": "hourly-add",
        "cron": "0 * * * *",
        "timezone": "America/New_York",
        "task": {"name": "rest.add", "args": [1, 2]},
        "overlap": "buffer_one",
    }
    made = await http.post("/v1/schedules", json=body)
    assert made.status_code == 201, made.text
    assert made.headers["location"] == "/v1/schedules/hourly-add"
    view = made.json()
    assert view["next_fire"] % 3600 == 0 and view["spec"]["overlap"] == "buffer_one"
    again = await http.post("/v1/schedules", json=body)
    assert again.status_code == 409
    listed = (await http.get("/v1/schedules")).json()["schedules"]
    assert [s["id"] for s in listed] == ["hourly-add"]
    paused = await http.post("/v1/schedules/hourly-add/pause", json={"note": "deploy"})
    assert paused.json()["paused"] is True and paused.json()["note"] == "deploy"
    fired = (await http.post("/v1/schedules/hourly-add/trigger")).json()
    [run] = fired["runs"]
    task = (await http.get(f"/v1/tasks/{run}")).json()
    assert task["spec"]["name"] == "rest.add" and task["spec"]["args"] == [1, 2]
    filled = await http.post(
        "/v1/schedules/hourly-add/backfill",
        json={"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T02:59:59Z"},
    )
    assert filled.status_code == 200, filled.text
    assert len(filled.json()["runs"]) == 3
    got = (await http.get("/v1/schedules/hourly-add")).json()
    kinds = [r["kind"] for r in got["recent"]]
    assert kinds == ["manual", "backfill", "backfill", "backfill"]
    assert all(r["state"] == "ready" for r in got["recent"])
    replaced = await http.put(
        "/v1/schedules/hourly-add", json={"every": 600, "task": {"name": "rest.add"}}
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["spec"]["every"] == 600
    assert (await http.post("/v1/schedules/hourly-add/resume")).json()["paused"] is False
    assert (await http.delete("/v1/schedules/hourly-add")).status_code == 204
    assert (await http.get("/v1/schedules/hourly-add")).status_code == 404


async def test_bad_schedules_are_refused_with_the_field(stack: Stack) -> None:
    http = stack.http
    task = {"name": "rest.add"}
    for body, field in [
        ({"id": "a", "cron": "61 * * * *", "task": task}, "cron"),
        ({"id": "a", "cron": "* * * * *", "timezone": "Nowhere/City", "task": task}, "timezone"),
        ({"id": "a", "every": 60, "cron": "* * * * *", "task": task}, "cron"),
        ({"id": "a", "every": 60}, "task"),
        ({"id": "a", "every": 60, "task": {"name": "shell"}}, "task.name"),
    ]:
        r = await http.post("/v1/schedules", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["field"] == field, r.json()
    r = await http.post("/v1/schedules", json={"id": "a b", "every": 60, "task": task})
    assert r.status_code == 422
    reader = await http.post(
        "/v1/schedules",
        json={"id": "a", "every": 60, "task": task},
        headers=auth_header("read"),
    )
    assert reader.status_code == 403
