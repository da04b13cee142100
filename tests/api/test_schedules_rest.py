"""Schedules over REST and gRPC against a real master: the whole life of one, and the
refusals."""

from __future__ import annotations

import json

import grpc.aio
import pytest

from tierq.api.proto import tierq_pb2 as pb
from tierq.api.proto import tierq_pb2_grpc
from tierq.api.proto import types_pb2 as types

from .conftest import Stack
from .support import TOKENS, auth_header

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
    again = await http.post(
        "/v1/schedules/hourly-add/backfill",
        json={"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T02:59:59Z"},
    )
    assert "runs" not in again.json() and len(again.json()["already_ran"]) == 3
    forced = await http.post(
        "/v1/schedules/hourly-add/backfill",
        json={"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z", "rerun": True},
    )
    assert len(forced.json()["runs"]) == 1 and "already_ran" not in forced.json()
    got = (await http.get("/v1/schedules/hourly-add")).json()
    kinds = [r["kind"] for r in got["recent"]]
    assert kinds == ["manual", "backfill", "backfill", "backfill", "backfill"]
    assert all(r["state"] == "ready" for r in got["recent"])
    # A conditional replace: If-Match with the ETag of a GET; stale, it is refused (412).
    read = await http.get("/v1/schedules/hourly-add")
    etag = read.headers["etag"]
    assert etag == f'"{read.json()["updated_at"]!r}"'
    replaced = await http.put(
        "/v1/schedules/hourly-add",
        json={"every": 600, "task": {"name": "rest.add"}},
        headers={"If-Match": etag},
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["spec"]["every"] == 600 and replaced.headers["etag"] != etag
    stale = await http.put(
        "/v1/schedules/hourly-add",
        json={"every": 900, "task": {"name": "rest.add"}},
        headers={"If-Match": etag},
    )
    assert stale.status_code == 412, stale.text
    assert stale.headers["content-type"] == "application/problem+json"
    assert stale.json()["code"] == "changed_since_read" and "read it" in stale.json()["detail"]
    bad = await http.put(
        "/v1/schedules/hourly-add",
        json={"every": 900, "task": {"name": "rest.add"}},
        headers={"If-Match": "not-a-tag"},
    )
    assert bad.status_code == 422 and bad.json()["field"] == "If-Match", bad.text
    assert (await http.get("/v1/schedules/hourly-add")).json()["spec"]["every"] == 600
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
        # Shorter than a second would flood the queue; one that never fires is a mistake.
        ({"id": "a", "every": 0.01, "task": task}, "every"),
        ({"id": "a", "cron": "* * * * *", "end_at": 5, "task": task}, "end_at"),
        ({"id": "a", "cron": "0 0 30 2 *", "task": task}, "cron"),
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


async def test_a_schedule_over_grpc(stack: Stack, stack_channel: grpc.aio.Channel) -> None:
    stub = tierq_pb2_grpc.TierqStub(stack_channel)
    md = (("authorization", f"Bearer {TOKENS['admin']}"),)
    body = {"id": "g", "every": 30, "offset": 5, "task": {"name": "rest.add", "args": [2]}}
    made = json.loads(
        (await stub.CreateSchedule(types.JsonDocument(json=json.dumps(body)), metadata=md)).json
    )
    assert made["next_fire"] % 30 == 5
    listed = json.loads((await stub.ListSchedules(pb.ListSchedulesRequest(), metadata=md)).json)
    assert [s["id"] for s in listed["schedules"]] == ["g"] and listed["next_cursor"] is None
    paused = json.loads(
        (await stub.PauseSchedule(pb.PauseScheduleRequest(id="g", note="n"), metadata=md)).json
    )
    assert paused["paused"] is True and paused["note"] == "n"
    fired = json.loads((await stub.TriggerSchedule(pb.ScheduleRef(id="g"), metadata=md)).json)
    assert len(fired["runs"]) == 1
    filled = json.loads(
        (
            await stub.BackfillSchedule(
                pb.BackfillScheduleRequest(id="g", start=1_767_225_600, end=1_767_225_690),
                metadata=md,
            )
        ).json
    )
    assert len(filled["runs"]) == 3  # :05, :35, :65 past the first whole minute
    for rerun, runs in ((False, 0), (True, 3)):
        req = pb.BackfillScheduleRequest(id="g", start=1_767_225_600, end=1_767_225_690)
        req.rerun = rerun
        again = json.loads((await stub.BackfillSchedule(req, metadata=md)).json)
        # Empty lists are left out of a reply, as everywhere in the API.
        assert len(again.get("runs", [])) == runs and len(again.get("already_ran", [])) == 3 - runs
    update = pb.UpdateScheduleRequest(id="g", json='{"cron": "@daily", "task": {"name": "x"}}')
    updated = json.loads((await stub.UpdateSchedule(update, metadata=md)).json)
    assert updated["spec"]["cron"] == "@daily"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        stale = pb.UpdateScheduleRequest(
            id="g", json='{"every": 60, "task": {"name": "x"}}', if_updated_at=1.0
        )
        await stub.UpdateSchedule(stale, metadata=md)
    assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "changed since it was read" in (err.value.details() or "")
    fresh = pb.UpdateScheduleRequest(
        id="g", json='{"every": 60, "task": {"name": "x"}}', if_updated_at=updated["updated_at"]
    )
    assert json.loads((await stub.UpdateSchedule(fresh, metadata=md)).json)["spec"]["every"] == 60
    with pytest.raises(grpc.aio.AioRpcError) as err:
        bad = pb.UpdateScheduleRequest(id="g", json='{"cron": "nope", "task": {"name": "x"}}')
        await stub.UpdateSchedule(bad, metadata=md)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    await stub.DeleteSchedule(pb.ScheduleRef(id="g"), metadata=md)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetSchedule(pb.ScheduleRef(id="g"), metadata=md)
    assert err.value.code() is grpc.StatusCode.NOT_FOUND
