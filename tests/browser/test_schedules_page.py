"""The schedules page in a real Chromium against a real stack: list, pause with a note,
trigger, edit and resume, each checked against the API afterwards."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from .conftest import Dashboard

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=15_000)


def _schedule(api: httpx.Client, sid: str) -> dict[str, object]:
    reply = api.get(f"/v1/schedules/{sid}")
    assert reply.status_code == 200, reply.text
    result: dict[str, object] = reply.json()
    return result


def test_schedules_page_pauses_triggers_edits_and_resumes(
    dash: Dashboard, api: httpx.Client
) -> None:
    body = {"id": "page-hourly", "cron": "0 * * * *", "task": {"name": "b.sleep", "args": [0]}}
    made = api.post("/v1/schedules", json=body)
    assert made.status_code == 201, made.text
    dash.goto("/schedules")
    page = dash.page
    row = page.locator('tr[data-schedule="page-hourly"]')
    expect(row).to_contain_text("0 * * * * (UTC)")
    expect(row).to_contain_text("active")
    # A cron schedule's next fire shows in its own zone, with the zone's abbreviation.
    assert (row.locator('[data-role="next-fire"]').text_content() or "").endswith(":00:00 UTC")
    ny = {**body, "id": "page-ny", "timezone": "America/New_York"}
    assert api.post("/v1/schedules", json=ny).status_code == 201
    dash.goto("/schedules")
    ny_next = page.locator('tr[data-schedule="page-ny"] [data-role="next-fire"]')
    expect(ny_next).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:00:00 E[SD]T$"))
    assert api.delete("/v1/schedules/page-ny").status_code == 204
    # A schedule of a task no live worker runs is flagged, with the reason on hover.
    typo = {**body, "id": "page-typo", "task": {"name": "b.sleeep"}}
    assert api.post("/v1/schedules", json=typo).status_code == 201
    dash.goto("/schedules")
    flag = page.locator('tr[data-schedule="page-typo"] [data-role="unserved"]')
    expect(flag).to_have_text("no worker")
    assert "'b.sleeep'" in (flag.get_attribute("title") or "")
    expect(row.locator('[data-role="unserved"]')).to_have_count(0)  # b.sleep has workers
    assert api.delete("/v1/schedules/page-typo").status_code == 204
    dash.shot("schedules")

    row.locator('[data-action="pause"]').click()
    page.locator('[data-role="pause-note"]').fill("release freeze")
    page.locator('[data-action="confirm-pause"]').click()
    expect(row.locator('[data-role="paused"]')).to_contain_text("paused: release freeze")
    assert _schedule(api, "page-hourly")["note"] == "release freeze"

    row.locator('[data-action="trigger"]').click()
    page.locator('[data-role="confirm-ok"]').click()
    expect(row.locator("td.runs a")).to_have_count(1)
    [run] = _schedule(api, "page-hourly")["recent"]  # type: ignore[misc]
    assert run["kind"] == "manual" and run["outcome"] == "started"

    row.locator('[data-action="edit"]').click()
    page.locator('[data-role="spec"]').fill('{"every": 90, "task": {"name": "b.sleep"}}')
    page.locator('[data-action="save-spec"]').click()
    expect(row).to_contain_text("every 90 s")
    assert _schedule(api, "page-hourly")["spec"] == {"every": 90.0, "task": {"name": "b.sleep"}}

    # Someone changes the schedule while the editor is open: saving does not overwrite it.
    row.locator('[data-action="edit"]').click()
    page.locator('[data-role="spec"]').fill('{"every": 30, "task": {"name": "b.sleep"}}')
    other = {"every": 120, "task": {"name": "b.sleep"}}
    assert api.put("/v1/schedules/page-hourly", json=other).status_code == 200
    page.locator('[data-action="save-spec"]').click()
    expect(page.locator('[data-role="error"]')).to_contain_text("changed since it was read")
    assert _schedule(api, "page-hourly")["spec"] == {"every": 120.0, "task": {"name": "b.sleep"}}
    dash.goto("/schedules")
    expect(row).to_contain_text("every 120 s")

    row.locator('[data-action="resume"]').click()
    expect(row).to_contain_text("active")
    deadline = time.monotonic() + 10
    while _schedule(api, "page-hourly")["paused"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert api.delete("/v1/schedules/page-hourly").status_code == 204
    assert dash.script_errors() == []
