"""The dashboard in a real Chromium against a real stack (open API: no tokens)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from .btasks import XSS_NAME
from .conftest import Dashboard, LiveStack, submit, task_state

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=15_000)


def wait_state(api: httpx.Client, task_id: str, state: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while (current := task_state(api, task_id)) != state:
        assert time.monotonic() < deadline, f"{task_id} is {current}, not {state}"
        time.sleep(0.1)


def metric(dash: Dashboard, name: str) -> int:
    text = dash.page.locator(f'[data-metric="{name}"]').inner_text()
    return int(text.replace(",", ""))


def test_overview_counters_move(dash: Dashboard, api: httpx.Client) -> None:
    dash.goto()
    page = dash.page
    expect(page.locator('[data-metric="succeeded-total"]')).to_have_text(re.compile(r"^[\d,]+$"))
    expect(page.locator('[data-role="master-health"] .dot.ok')).to_be_visible()
    before = metric(dash, "succeeded-total")
    ids = api.post(
        "/v1/tasks:batch",
        json={"tasks": [{"name": "b.quick", "args": [i]} for i in range(150)]},
    ).json()["ids"]
    assert len(ids) == 150
    page.wait_for_function(
        """(n) => Number(document.querySelector('[data-metric="succeeded-total"]')
                 .textContent.replace(/,/g, '')) >= n""",
        arg=before + 150,
        timeout=20_000,
    )
    # The per-second cards saw the burst too (started/s comes from the event feed).
    page.wait_for_function(
        """() => ['submitted-rate', 'started-rate', 'succeeded-rate'].every(m =>
              parseFloat(document.querySelector(`[data-metric="${m}"]`).textContent) > 0)"""
    )
    expect(page.locator('[data-metric="latency"]')).not_to_have_text("\u2013")
    expect(page.locator('[data-role="region-health"]')).to_contain_text("region default")
    dash.shot("overview")
    assert dash.errors == []


SERIES_COLOURS = """el => Object.fromEntries([...el.querySelectorAll('.u-legend .u-series')]
    .filter(r => r.querySelector('.u-marker'))
    .map(r => [r.querySelector('.u-label').textContent,
               getComputedStyle(r.querySelector('.u-marker')).borderColor]))"""


def test_overview_starts_from_the_apis_figures(dash: Dashboard, api: httpx.Client) -> None:
    """On load, the throughput chart holds the master's last minute second by second, and the
    latency card shows the master's percentiles, before the page has seen any event."""
    ids = api.post(
        "/v1/tasks:batch", json={"tasks": [{"name": "b.quick", "args": [i]} for i in range(20)]}
    ).json()["ids"]
    for task_id in ids:
        wait_state(api, task_id, "succeeded")
    deadline = time.monotonic() + 30
    while len((stats := api.get("/v1/stats").json())["history"]) < 20:
        assert time.monotonic() < deadline, stats["history"]
        time.sleep(0.2)
    assert stats["latency"]["samples"] > 0
    dash.goto()
    page = dash.page
    expect(page.locator('[data-metric="latency"]')).not_to_have_text("\u2013")
    expect(page.locator('[data-metric="latency-sub"]')).to_contain_text("first start")
    # The page reads /v1/stats once a second: 20 points at once are the master's history.
    at_least_20 = re.compile(r"^([2-9]\d|\d{3,})$")
    chart = page.locator('[data-chart="throughput"]')
    expect(chart).to_have_attribute("data-points", at_least_20, timeout=3000)
    # Queue depth and latency have no history at the master: the page's own readings survive
    # a reload (one reading a second would give at most three in the 2.5 s allowed).
    at_least_5 = re.compile(r"^([5-9]|\d{2,})$")
    for name in ("queue", "latency"):
        expect(page.locator(f'[data-chart="{name}"]')).to_have_attribute(
            "data-points", at_least_5, timeout=15_000
        )
    page.reload()
    for name in ("queue", "latency"):
        expect(page.locator(f'[data-chart="{name}"]')).to_have_attribute(
            "data-points", at_least_5, timeout=2500
        )
    assert dash.errors == []


def test_state_colours_are_distinct_and_the_same_everywhere(
    dash: Dashboard, api: httpx.Client
) -> None:
    dash.goto()
    page = dash.page
    expect(page.locator('[data-chart="queue"] .u-legend .u-series')).not_to_have_count(0)
    css = page.evaluate(
        """() => Object.fromEntries(['pending', 'ready', 'assigned', 'running', 'succeeded',
             'failed', 'dead', 'cancelled', 'skipped', 'evicted'].map(s => {
               const probe = document.createElement('span');
               probe.style.color = `var(--s-${s})`;
               document.body.append(probe);
               const c = getComputedStyle(probe).color;
               probe.remove();
               return [s, c]; }))"""
    )
    assert len(set(css.values())) == len(css), css
    for chart in ("throughput", "queue", "latency"):
        colours = page.locator(f'[data-chart="{chart}"]').evaluate(SERIES_COLOURS)
        assert len(set(colours.values())) == len(colours), (chart, colours)
        for label, colour in colours.items():
            state = {"started": "running"}.get(label, label)
            if state in css:
                assert colour == css[state], (chart, label, colour)
    throughput = page.locator('[data-chart="throughput"]').evaluate(SERIES_COLOURS)
    assert throughput["failed"] == css["failed"] != css["dead"]
    r = api.post(
        "/v1/workflows",
        json={"name": "colours", "nodes": [{"key": "a", "spec": {"name": "b.quick", "args": [1]}}]},
    )
    assert r.status_code == 201, r.text
    dash.goto(f"/workflows/{r.json()['workflow_id']}")
    legend = page.locator('[data-role="legend"] [data-state]')
    expect(legend).to_have_count(len(css))
    swatches = legend.evaluate_all(
        "els => Object.fromEntries(els.map(e => [e.dataset.state, "
        "getComputedStyle(e.querySelector('.sw')).backgroundColor]))"
    )
    assert swatches == css
    node = page.locator('[data-role="dag"] .node[data-key="a"]')
    expect(node).to_have_attribute("data-state", "succeeded")
    assert node.locator("rect").evaluate("r => getComputedStyle(r).fill") == css["succeeded"]
    assert dash.errors == []


def test_workflow_nodes_turn_green_live(dash: Dashboard, api: httpx.Client) -> None:
    keys = [f"n{i}" for i in range(9)]
    edges = [["n0", "n1"], ["n0", "n2"], ["n1", "n3"], ["n2", "n3"], ["n3", "n4"]]
    edges += [["n4", "n5"], ["n4", "n6"], ["n5", "n7"], ["n6", "n7"], ["n7", "n8"]]
    r = api.post(
        "/v1/workflows",
        json={
            "name": "browser-dag",
            "nodes": [{"key": k, "spec": {"name": "b.sleep", "args": [0.5]}} for k in keys],
            "edges": edges,
        },
    )
    assert r.status_code == 201, r.text
    wf = r.json()["workflow_id"]
    dash.goto(f"/workflows/{wf}")
    page = dash.page
    nodes = page.locator('[data-role="dag"] .node')
    expect(nodes).to_have_count(9)
    expect(page.locator('[data-role="dag"]')).to_have_attribute("data-layout", "dagre")
    # One arrowhead per edge, at the child's end (issue 15, item 12).
    heads = page.locator('[data-role="arrows"]').get_attribute("d") or ""
    assert heads.count("Z") == len(edges), heads
    page.evaluate("window.__sameDocument = true")
    first = nodes.evaluate_all("els => els.map(e => e.dataset.state)")
    assert "succeeded" not in first[-1:], first  # the last node waits on eight others
    dash.shot("workflow-running")
    # Live: every node turns green without a reload.
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-role="dag"] .node')]
              .every(n => n.dataset.state === 'succeeded')""",
        timeout=25_000,
    )
    assert page.evaluate("window.__sameDocument") is True
    fill = page.locator('[data-role="dag"] .node[data-key="n8"] rect').evaluate(
        "r => getComputedStyle(r).fill"
    )
    assert fill == "rgb(34, 197, 94)"
    expect(page.locator('[data-role="workflow-progress"]')).to_contain_text("9 / 9 done")
    expect(page.locator('[data-role="workflow-state"]')).to_have_text("succeeded")
    expect(page.locator('[data-action="cancel-workflow"]')).to_be_disabled()  # nothing left
    expect(page.locator('[data-role="workflow-progress"]')).to_have_attribute(
        "data-failed", "false"
    )
    dash.shot("workflow")
    # Pan and zoom change the view transform.
    svg = page.locator('[data-role="dag"]')
    box = svg.bounding_box()
    assert box is not None
    before = page.locator('[data-role="dag"] .viewport').get_attribute("transform")
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -400)
    expect(page.locator('[data-role="dag"] .viewport')).not_to_have_attribute(
        "transform", before or ""
    )
    # The timeline tab draws one bar per task.
    page.locator('[data-tab="timeline"]').click()
    expect(page.locator('[data-role="gantt"] rect.run')).to_have_count(9)
    dash.shot("workflow-timeline")
    # A click on a node opens its task.
    page.locator('[data-tab="graph"]').click()
    page.locator('[data-role="dag"] .node[data-key="n8"]').click()
    expect(page.locator('[data-role="task-title"]')).to_have_text("b.sleep")
    expect(page.locator('[data-role="task-state"]')).to_have_text("succeeded")
    assert dash.errors == []


def test_a_failed_workflow_is_not_drawn_all_green(dash: Dashboard, api: httpx.Client) -> None:
    """Issue 15, item 12: a failed workflow's bar was all green, and it offered a cancel."""
    page = dash.page
    doc = {
        "name": "breaks",
        "nodes": [
            {
                "key": "bad",
                "spec": {"name": "b.fail", "args": ["no"], "retry": {"max_attempts": 1}},
            },
            {"key": "after", "spec": {"name": "b.quick", "args": [1]}},
        ],
        "edges": [["bad", "after"]],
    }
    r = api.post("/v1/workflows", json=doc)
    assert r.status_code == 201, r.text
    dash.goto(f"/workflows/{r.json()['workflow_id']}")
    expect(page.locator('[data-role="workflow-state"]')).to_have_text("failed")
    expect(page.locator('[data-role="workflow-progress"]')).to_have_attribute("data-failed", "true")
    fill = page.locator('[data-role="workflow-progress"] .bar-fill').evaluate(
        "e => getComputedStyle(e).backgroundImage"
    )
    assert "linear-gradient" in fill and "rgb(34, 197, 94)" not in fill.split(",")[-1], fill
    expect(page.locator('[data-action="cancel-workflow"]')).to_be_disabled()
    assert dash.script_errors() == []


def test_workflow_of_1000_nodes_is_laid_out(dash: Dashboard, api: httpx.Client) -> None:
    # 40 levels of 25 tasks; each task depends on one or two tasks of the level before.
    width = 25
    nodes = [{"key": f"k{i}", "spec": {"name": "b.quick", "args": [i]}} for i in range(1000)]
    edges = []
    for i in range(width, 1000):
        level = i // width
        edges.append([f"k{(level - 1) * width + (i * 7) % width}", f"k{i}"])
        if i % 3 == 0:
            edges.append([f"k{(level - 1) * width + (i * 11 + 3) % width}", f"k{i}"])
    unique = sorted({(a, b) for a, b in edges})
    r = api.post(
        "/v1/workflows",
        json={"name": "wide", "nodes": nodes, "edges": [list(e) for e in unique]},
    )
    assert r.status_code == 201, r.text
    dash.goto(f"/workflows/{r.json()['workflow_id']}")
    page = dash.page
    expect(page.locator('[data-role="dag"] .node')).to_have_count(1000)
    expect(page.locator('[data-role="dag"]')).to_have_attribute(
        "data-layout", "dagre", timeout=30_000
    )
    expect(page.locator('[data-role="dag-status"]')).to_contain_text("laid out in")
    page.locator('[data-role="fit"]').click()
    dash.shot("workflow-1000")
    assert dash.errors == []


def test_cancel_and_change_priority_from_the_page(dash: Dashboard, api: httpx.Client) -> None:
    page = dash.page
    # Cancel a running task.
    running = submit(api, "b.sleep", 30.0)
    wait_state(api, running, "running")
    dash.goto(f"/tasks/{running}")
    expect(page.locator('[data-role="task-state"]')).to_have_text("running")
    # Declining the confirmation changes nothing.
    page.locator('[data-action="cancel"]').click()
    page.locator("dialog[open] button", has_text="Cancel").first.click()
    expect(page.locator("dialog[open]")).to_have_count(0)
    assert task_state(api, running) == "running"
    page.locator('[data-action="cancel"]').click()
    page.locator('[data-role="confirm-ok"]').click()
    expect(page.locator('[data-role="task-state"]')).to_have_text("cancelled")
    assert task_state(api, running) == "cancelled"
    # The API refuses to reprioritise a cancelled task: its reason is shown.
    page.locator('[data-role="priority-input"]').fill("7")
    page.locator('[data-action="priority"]').click()
    page.locator('[data-role="confirm-ok"]').click()
    expect(page.locator('[data-role="action-error"]')).to_contain_text("already cancelled")
    dash.shot("task-refused")

    # Reprioritise a waiting task (its region does not exist, so it stays ready).
    waiting = submit(api, "b.quick", 1, region="nowhere", priority=3)
    dash.goto(f"/tasks/{waiting}")
    expect(page.locator('[data-role="task-state"]')).to_have_text("ready")
    expect(page.locator('[data-role="priority-input"]')).to_have_value("3")
    page.locator('[data-role="priority-input"]').fill("42")
    page.locator('[data-action="priority"]').click()
    expect(page.locator("dialog[open]")).to_contain_text("to 42")
    page.locator('[data-role="confirm-ok"]').click()
    expect(page.locator('[data-role="priority-input"]')).to_have_value("42")
    assert api.get(f"/v1/tasks/{waiting}").json()["priority"] == 42
    # An out-of-range priority is the API's to refuse, with its words.
    page.locator('[data-role="priority-input"]').fill("5000")
    page.locator('[data-action="priority"]').click()
    page.locator('[data-role="confirm-ok"]').click()
    expect(page.locator('[data-role="action-error"]')).to_contain_text("priority")
    api.post(f"/v1/tasks/{waiting}/cancel")
    assert dash.script_errors() == []


def test_task_page_shows_real_attempts_only(dash: Dashboard, api: httpx.Client) -> None:
    """Issue 15: a running first attempt also drew a phantom row "attempt undefined" (the
    task document leaves attempt 1 out), and a task not started showed a literal "null"."""
    page = dash.page
    running = submit(api, "b.sleep", 30.0)
    wait_state(api, running, "running")
    dash.goto(f"/tasks/{running}")
    expect(page.locator('[data-role="task-state"]')).to_have_text("running")
    attempts = page.locator('[data-role="attempts"]')
    expect(attempts).to_contain_text("attempt 1")
    assert "undefined" not in attempts.inner_text()
    assert attempts.inner_text().count("attempt 1") == 1
    # Only what can apply is offered: a running task can be cancelled, not retried.
    expect(page.locator('[data-action="cancel"]')).to_be_enabled()
    expect(page.locator('[data-action="retry"]')).to_be_disabled()
    api.post(f"/v1/tasks/{running}/cancel")
    expect(page.locator('[data-role="task-state"]')).to_have_text("cancelled")
    expect(page.locator('[data-action="cancel"]')).to_be_disabled()
    expect(page.locator('[data-action="retry"]')).to_be_enabled()
    waiting = submit(api, "b.quick", 1, region="nowhere")
    dash.goto(f"/tasks/{waiting}")
    expect(page.locator('[data-role="task-state"]')).to_have_text("ready")
    expect(attempts).to_contain_text("Not started yet.")
    section = page.locator("section", has=attempts)
    assert "null" not in section.inner_text()
    text = page.locator("main").inner_text()
    assert "null" not in text
    # Times are ISO 8601 (local), not a locale's day/month order.
    assert re.search(r"Submitted\s+\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}", text), text
    api.post(f"/v1/tasks/{waiting}/cancel")
    assert dash.script_errors() == []


def test_a_childs_arguments_show_its_parents_results(dash: Dashboard, api: httpx.Client) -> None:
    later = time.time() + 3600
    r = api.post(
        "/v1/workflows",
        json={
            "name": "parent-results",
            "nodes": [
                {"key": "a", "spec": {"name": "b.quick", "args": [5]}},
                {"key": "b", "spec": {"name": "b.quick", "args": [{"$result": "a"}]}},
                {"key": "c", "spec": {"name": "b.sleep", "args": [30], "run_at": later}},
                {"key": "d", "spec": {"name": "b.quick", "args": [{"$result": "c"}]}},
            ],
            "edges": [["a", "b"], ["c", "d"]],
        },
    )
    assert r.status_code == 201, r.text
    ids = r.json()["ids"]
    wait_state(api, ids["b"], "succeeded")
    dash.goto(f"/tasks/{ids['b']}")
    page = dash.page
    args = page.locator('[data-role="args"]')
    resolved = args.locator('[data-parent="a"]')
    expect(resolved).to_have_text("10")  # what b received: a's result
    expect(args).to_contain_text("result of parent a")
    expect(args).not_to_contain_text("$result")
    expect(args.locator("a")).to_have_attribute("href", f"#/tasks/{ids['a']}")
    expect(page.locator('[data-role="result"]')).to_have_text("20")
    # The wait before the attempt started is a pale span, not a black bar.
    wait = page.locator('[data-role="attempts"] rect.wait').first
    assert wait.evaluate("r => getComputedStyle(r).fill") == "rgb(224, 231, 255)"
    submitted = page.locator('[data-role="args-submitted"]')
    submitted.locator("summary").click()
    expect(submitted).to_contain_text('"$result": "a"')
    dash.shot("task-parent-results")
    # A parent that has not run yet: the reference stays, with why.
    dash.goto(f"/tasks/{ids['d']}")
    expect(page.locator('[data-role="args"] [data-parent="c"]')).to_contain_text(
        "parent pending, no result yet"
    )
    assert dash.errors == []


def test_tracebacks_hide_tierqs_own_frames_until_asked(dash: Dashboard, api: httpx.Client) -> None:
    page = dash.page
    failed = submit(api, "b.fail", "kaput", retry={"max_attempts": 1})
    wait_state(api, failed, "dead")
    full = api.get(f"/v1/tasks/{failed}").json()["error"]["traceback"]
    assert "tierq/worker/" in full  # the worker's frames are in what it reported
    dash.goto(f"/tasks/{failed}")
    shown = page.locator('[data-role="traceback"]')
    expect(shown).to_contain_text("ValueError: kaput")
    expect(shown).to_contain_text("raise ValueError(message)")
    assert "tierq/worker/" not in shown.inner_text()
    page.locator('[data-action="all-frames"]').click()
    expect(shown).to_contain_text("tierq/worker/")
    assert dash.script_errors() == []


def test_settings_validation_error_then_saved(dash: Dashboard, api: httpx.Client) -> None:
    original = api.get("/v1/settings").json()
    page = dash.page
    dash.goto("/settings")
    rate = page.locator('input[data-path="breaker.failure_rate"]')
    expect(rate).to_have_value("0.5")
    rate.fill("0")
    page.locator('[data-action="save"]').click()
    error = page.locator('[data-error-for="breaker.failure_rate"]')
    expect(error).to_be_visible()
    expect(error).to_contain_text("breaker.failure_rate must be > 0")
    expect(rate).to_have_class("invalid")
    # A type error is refused by the API's schema, named by field as well.
    rate.fill("0.5")
    depth = page.locator('input[data-path="admission.max_queued"]')
    depth.fill("lots")
    page.locator('[data-action="save"]').click()
    expect(page.locator('[data-error-for="admission.max_queued"]')).to_be_visible()
    dash.shot("settings-invalid")
    depth.fill("500000")
    page.locator('input[data-path="aging_rate"]').fill("0.25")
    page.locator('[data-action="save"]').click()
    expect(page.locator('[data-role="saved"]')).to_be_visible()
    expect(page.locator(".field-error:visible")).to_have_count(0)
    saved = api.get("/v1/settings").json()
    assert saved["aging_rate"] == 0.25
    assert saved["admission"]["max_queued"] == 500000
    expect(page.locator('input[data-path="aging_rate"]')).to_have_value("0.25")
    r = api.put("/v1/settings", json=original)
    assert r.status_code == 200, r.text
    assert dash.script_errors() == []


def test_user_supplied_text_is_never_markup(dash: Dashboard, api: httpx.Client) -> None:
    payload = "<script>alert(2)</script><img src=y onerror=alert(3)>"
    task_id = submit(api, XSS_NAME, payload, retry={"max_attempts": 1})
    wait_state(api, task_id, "dead")
    page = dash.page
    response = page.goto(f"{dash.base}/")
    assert response is not None
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    dash.goto(f"/tasks?name={quote(XSS_NAME, safe='')}")
    cell = page.locator(f'[data-task="{task_id}"] [data-role="task-name"]')
    expect(cell).to_have_text(XSS_NAME)
    dash.shot("tasks-xss")
    dash.goto(f"/tasks/{task_id}")
    expect(page.locator('[data-role="task-title"]')).to_have_text(XSS_NAME)
    expect(page.locator('[data-role="error-message"]')).to_have_text(payload)
    expect(page.locator('[data-role="args"]')).to_contain_text(payload)
    dash.goto("/events")
    expect(page.locator('[data-role="event-list"]')).to_be_visible()
    # Nothing the data said became an element or ran.
    assert page.locator("img").count() == 0
    assert page.locator("main script").count() == 0
    assert dash.dialogs == []
    assert dash.errors == []


def test_events_tail_live(dash: Dashboard, api: httpx.Client) -> None:
    dash.goto("/events")
    page = dash.page
    expect(page.locator("#live")).to_have_text("live")
    task_id = submit(api, "b.quick", 5)
    row = page.locator('[data-role="event-list"] .vrow', has_text=task_id)
    expect(row.first).to_be_visible()
    shown = row.first.locator('[data-role="event-time"]').inner_text()
    assert re.fullmatch(r"\d{2}:\d{2}:\d{2}\.\d{3}", shown), shown  # the time of day
    expect(
        page.locator('[data-role="event-list"] .vrow[data-kind="task_succeeded"]', has_text=task_id)
    ).to_have_count(1)
    # A server-side filter: only this task's events.
    page.locator('[data-role="event-filters"] input[name="task"]').fill(task_id)
    page.locator('[data-role="event-filters"] button[type="submit"]').click()
    other = submit(api, "b.quick", 6)
    again = submit(api, "b.quick", 7)
    wait_state(api, again, "succeeded")
    time.sleep(0.5)
    assert page.locator('[data-role="event-list"] .vrow', has_text=other).count() == 0
    dash.shot("events")
    assert dash.errors == []


def test_events_page_shows_the_last_events_on_open(dash: Dashboard, api: httpx.Client) -> None:
    task_id = submit(api, "b.quick", 8)
    wait_state(api, task_id, "succeeded")
    dash.goto("/events")  # after the task ended: nothing new is coming for it
    page = dash.page
    rows = page.locator('[data-role="event-list"] .vrow', has_text=task_id)
    done = rows.and_(page.locator('[data-kind="task_succeeded"]'))
    expect(done).to_have_count(1)
    kinds = rows.evaluate_all(
        "els => els.sort((a, b) => a.offsetTop - b.offsetTop).map(e => e.dataset.kind)"
    )
    assert kinds[0] == "task_succeeded" and kinds[-1] == "task_submitted", kinds  # newest first
    assert dash.errors == []


def test_leased_tasks_turn_assigned_then_running_live(
    dash: Dashboard, api: httpx.Client, stack: LiveStack
) -> None:
    """A lease is one ``tasks_assigned`` event for all the tasks it hands out: the task list,
    the workflow graph, the task page and the event tail each show their task assigned, live.

    Region "hold" has one worker slot and leases one task more (prefetch): while a blocker
    runs there, the next task leased stays assigned until the slot frees, then runs."""
    stop_region = stack.start_region("hold", prefetch=1, concurrency=1)

    def open_page(route: str) -> Any:
        page = dash.context.new_page()
        page.on("pageerror", lambda exc: dash.errors.append(str(exc)))
        page.goto(f"{dash.base}/#{route}")
        return page

    try:
        blocker = submit(api, "b.sleep", 9.0, region="hold")
        wait_state(api, blocker, "running")
        # The event tail (it also replays the stream's end: the blocker's lease is there too).
        events = open_page("/events?kinds=tasks_assigned&region=hold")
        expect(events.locator("#live")).to_have_text("live")
        r = api.post(
            "/v1/workflows",
            json={
                "name": "browser-lease",
                "nodes": [
                    {
                        "key": "first",
                        "spec": {"name": "b.sleep", "args": [4.0], "region": "default"},
                    },
                    {"key": "held", "spec": {"name": "b.sleep", "args": [1.0], "region": "hold"}},
                ],
                "edges": [["first", "held"]],
            },
        )
        assert r.status_code == 201, r.text
        wf = r.json()["workflow_id"]
        held = r.json()["ids"]["held"]
        # "held" waits for "first" (4 s): the task list and the graph see it pending.
        dash.goto(f"/tasks?workflow={wf}")
        graph = open_page(f"/workflows/{wf}")
        row = dash.page.locator(f'[data-task="{held}"]')
        node = graph.locator(f'[data-role="dag"] .node[data-task="{held}"]')
        expect(row.locator(".badge")).to_have_text("pending")
        expect(node).to_have_attribute("data-state", "pending")
        task = open_page(f"/tasks/{held}")
        # Leased behind the blocker: assigned, live, everywhere.
        expect(row.locator(".badge")).to_have_text("assigned", timeout=20_000)
        expect(row).to_contain_text("hold")
        expect(node).to_have_attribute("data-state", "assigned")
        expect(task.locator('[data-role="task-state"]')).to_have_text("assigned")
        lease = events.locator(
            '[data-role="event-list"] .vrow[data-kind="tasks_assigned"]', has_text=held
        )
        expect(lease).to_have_count(1)
        expect(lease.locator('[data-role="event-summary"]')).to_have_text(
            "1 task \u2192 region hold \u00b7 attempt 1"
        )
        assert task_state(api, blocker) == "running"
        dash.shot("tasks-assigned")
        # Then it runs when the blocker is done, and succeeds.
        expect(row.locator(".badge")).to_have_text("running", timeout=20_000)
        expect(node).to_have_attribute("data-state", "running")
        expect(row.locator(".badge")).to_have_text("succeeded")
        expect(node).to_have_attribute("data-state", "succeeded")
        expect(task.locator('[data-role="task-state"]')).to_have_text("succeeded")
        assert dash.errors == []
    finally:
        stop_region()


def test_live_js_expands_a_lease_into_per_task_updates(dash: Dashboard) -> None:
    dash.goto()
    out = dash.page.evaluate(
        """async () => {
          const live = await import("/js/live.js");
          const lease = {
            kind: "tasks_assigned", at: 5, region: "eu", ids: ["a", "b"], attempts: [1, 3],
          };
          const b = { id: "b", state: "ready" };
          const c = { id: "c", state: "ready" };
          const old = { id: "d", state: "ready" };
          return {
            per: live.perTask("tasks_assigned", lease),
            single: live.perTask("task_started", { id: "a", attempt: 1, worker: "w" }).length,
            none: live.perTask("workflow_finished", { state: "succeeded" }).length,
            b: [live.applyEvent(b, "tasks_assigned", lease), b],
            c: [live.applyEvent(c, "tasks_assigned", lease), c.state],
            old: [live.applyEvent(old, "task_assigned", { id: "d", attempt: 2, region: "us" }),
                  old],
            kinds: live.TASK_KINDS.filter((k) => k.endsWith("assigned")),
          };
        }"""
    )
    assert out["per"] == [
        [
            "a",
            "task_assigned",
            {"kind": "task_assigned", "at": 5, "id": "a", "attempt": 1, "region": "eu"},
        ],
        [
            "b",
            "task_assigned",
            {"kind": "task_assigned", "at": 5, "id": "b", "attempt": 3, "region": "eu"},
        ],
    ]
    assert (out["single"], out["none"]) == (1, 0)
    assert out["b"] == [True, {"id": "b", "state": "assigned", "region": "eu", "attempt": 3}]
    assert out["c"] == [False, "ready"]
    assert out["old"] == [True, {"id": "d", "state": "assigned", "region": "us", "attempt": 2}]
    assert out["kinds"] == ["task_assigned", "tasks_assigned"]
    assert dash.errors == []


def test_long_task_list_is_paged_and_virtual(dash: Dashboard, api: httpx.Client) -> None:
    # 3,000 tasks due in an hour: they wait (pending), and the list must page through them.
    later = time.time() + 3600
    tasks = [{"name": "b.virtual", "args": [i], "run_at": later} for i in range(3000)]
    r = api.post("/v1/tasks:batch", json={"tasks": tasks})
    assert r.status_code == 201, r.text
    dash.goto("/tasks?name=b.virtual")
    page = dash.page
    status = page.locator('[data-role="list-status"]')
    expect(status).to_have_text("200+ tasks")
    rendered = page.locator('[data-role="task-list"] .vrow').count()
    assert 0 < rendered < 80  # only what is on screen (plus a margin)
    box = page.locator('[data-role="task-list"]')
    for _ in range(30):
        box.evaluate("el => { el.scrollTop = el.scrollHeight; }")
        page.wait_for_timeout(100)
        if status.inner_text() == "3,000 tasks":
            break
    expect(status).to_have_text("3,000 tasks")
    assert page.locator('[data-role="task-list"] .vrow').count() < 80
    expect(page.locator('[data-role="list-footer"]')).to_have_text("End of list.")
    assert dash.errors == []


def test_task_list_is_newest_first_and_brings_new_tasks_to_the_top(
    dash: Dashboard, api: httpx.Client
) -> None:
    later = time.time() + 3600  # they wait (pending): nothing changes them meanwhile
    ids = [submit(api, "b.ordered", i, run_at=later) for i in range(3)]
    dash.goto("/tasks?name=b.ordered")
    page = dash.page
    rows = page.locator('[data-role="task-list"] .vrow')
    expect(rows).to_have_count(3)
    shown = lambda: rows.evaluate_all(  # noqa: E731 - read again after each change
        "els => els.sort((a, b) => a.offsetTop - b.offsetTop).map(e => e.dataset.task)"
    )
    assert shown() == ids[::-1]
    expect(page.locator('select[data-filter="order"]')).to_have_value("")
    # "2 s ago", and the ISO time (local, as everywhere on the dashboard) on hover.
    title = rows.first.locator('[data-role="submitted"]').get_attribute("title") or ""
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}", title), title
    page.evaluate("window.__sameDocument = true")
    # Submitted while the page is open: counted, then put on top of the rows already read.
    newer = submit(api, "b.ordered", 3, run_at=later)
    button = page.locator('[data-role="new-tasks"]')
    expect(button).to_have_text("1 new — show at the top")
    button.click()
    expect(rows).to_have_count(4)
    assert shown() == [newer, *ids[::-1]]
    expect(page.locator('[data-role="list-status"]')).to_have_text("4 tasks")
    assert page.evaluate("window.__sameDocument") is True
    # Oldest first on request (kept in the URL).
    page.locator('select[data-filter="order"]').select_option("oldest")
    page.locator('[data-role="filters"] button[type="submit"]').click()
    expect(page).to_have_url(re.compile(r"order=oldest"))
    expect(rows.first).to_have_attribute("data-task", ids[0])
    assert shown() == [*ids, newer]
    assert dash.errors == []


def test_regions_page_drains_a_worker(dash: Dashboard, api: httpx.Client, stack: LiveStack) -> None:
    before = {w["id"] for w in api.get("/v1/workers").json()["workers"]}
    stack.start_worker(concurrency=2)
    deadline = time.monotonic() + 15
    while not (new := {w["id"] for w in api.get("/v1/workers").json()["workers"]} - before):
        assert time.monotonic() < deadline, "the extra worker never registered"
        time.sleep(0.2)
    worker = new.pop()
    dash.goto("/regions")
    page = dash.page
    row = page.locator(f'tr[data-worker="{worker}"]')
    expect(row).to_be_visible()
    expect(page.locator('[data-region="default"]')).to_contain_text("Lease")
    dash.shot("regions")
    row.locator('[data-action="drain-worker"]').click()
    page.locator('[data-role="confirm-ok"]').click()
    # The region marks it draining, and the worker leaves once idle.
    deadline = time.monotonic() + 15
    while True:
        views = {w["id"]: w for w in api.get("/v1/workers").json()["workers"]}
        if worker not in views or views[worker].get("draining"):
            break
        assert time.monotonic() < deadline, "the worker was not drained"
        time.sleep(0.2)
    assert api.post("/v1/regions/nowhere/drain").status_code == 404
    assert dash.errors == []


def test_workflow_list_comes_from_the_api_and_stays_live(
    dash: Dashboard, api: httpx.Client
) -> None:
    def submit(name: str) -> str:
        r = api.post(
            "/v1/workflows",
            json={
                "name": name,
                "nodes": [{"key": "a", "spec": {"name": "b.sleep", "args": [0.2]}}],
            },
        )
        assert r.status_code == 201, r.text
        return str(r.json()["workflow_id"])

    before = submit("listed-before")
    dash.goto("/workflows")
    page = dash.page
    row = page.locator(f'[data-role="workflow-list"] tr[data-workflow="{before}"]')
    expect(row).to_contain_text("listed-before")
    title = row.locator('[data-role="submitted"]').get_attribute("title") or ""
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}", title), title
    # A workflow submitted while the page is open appears at the top and finishes live.
    after = submit("listed-after")
    first = page.locator('[data-role="workflow-list"] tbody tr').first
    expect(first).to_have_attribute("data-workflow", after)
    expect(first).to_contain_text("succeeded", timeout=15_000)
    # The state filter asks the API again.
    page.locator('[data-role="workflow-state-filter"]').select_option("succeeded")
    expect(page.locator('[data-role="workflow-list"] tbody tr').first).to_contain_text("succeeded")
    assert dash.errors == []


def test_regions_page_shows_the_autoscaler_live(
    dash: Dashboard, api: httpx.Client, stack: LiveStack, tmp_path: Path
) -> None:
    """Desired vs actual workers, the decisions with their reason and the autoscaler's health;
    the page is live (badge) and shows the region's name as typed."""
    original = api.get("/v1/settings").json()
    stop = stack.start_autoscaler(str(tmp_path / "autoscale"))
    try:
        dash.goto("/regions")
        page = dash.page
        region = page.locator('[data-region="default"]')
        name = region.locator('[data-role="region-name"]')
        expect(name).to_have_text("default", use_inner_text=True)  # not upper-cased
        expect(page.locator("#live")).to_have_text("live")
        scaler = region.locator('[data-role="autoscaler"]')
        expect(scaler.locator('[data-role="desired"]')).to_have_text("0 desired")
        expect(scaler.locator('[data-role="health"]')).to_contain_text("checked")
        # Raise min_workers: the autoscaler starts a worker, and the page shows the
        # decision as the event arrives.
        settings = {**original, "autoscale": {**original.get("autoscale", {}), "min_workers": 1}}
        assert api.put("/v1/settings", json=settings).status_code == 200
        decision = scaler.locator('tr[data-decision="up"]')
        expect(decision).to_contain_text("0 → 1", timeout=15_000)
        expect(decision).to_contain_text("min_workers 1")
        expect(scaler.locator('[data-role="desired"]')).to_have_text("1 desired")
        dash.shot("regions-autoscaler")
    finally:
        api.put("/v1/settings", json=original)
        stop()
    assert dash.errors == []


def test_regions_page_shows_every_pool_autoscaler(
    dash: Dashboard, stack: LiveStack, tmp_path: Path
) -> None:
    """Two autoscalers in one region (a pool per set of task types): a block each, titled
    by its pool's task types."""
    stop_a = stack.start_autoscaler(str(tmp_path / "a"))
    stop_b = stack.start_autoscaler(str(tmp_path / "b"), modules=("tierq.demo",))
    try:
        dash.goto("/regions")
        scalers = dash.page.locator('[data-region="default"] [data-role="autoscaler"]')
        expect(scalers).to_have_count(2)
        titles = scalers.locator("h3")
        expect(titles.nth(0)).to_contain_text("Autoscaler: ")
        texts = sorted(titles.all_inner_texts())
        assert any("b.sleep" in t for t in texts) and any("demo." in t for t in texts), texts
    finally:
        stop_b()
        stop_a()
    assert dash.errors == []


def test_settings_page_edits_a_regions_own_autoscale_settings(
    dash: Dashboard, api: httpx.Client
) -> None:
    original = api.get("/v1/settings").json()
    page = dash.page
    dash.goto("/settings")
    editor = page.locator('.rules[data-path="autoscale.regions"]')
    editor.get_by_role("button", name="Add rule").click()
    values = {"region": "eu", "min_workers": "1", "max_workers": "0"}
    for key, value in values.items():
        editor.locator(f'input[data-path="autoscale.regions[0].{key}"]').fill(value)
    editor.locator('input[data-path="autoscale.regions[0].target_utilisation"]').fill("0.5")
    editor.locator('input[data-path="autoscale.regions[0].cooldown"]').fill("30")
    page.locator('[data-action="save"]').click()
    # max_workers below min_workers: refused, named on its input.
    error = page.locator('[data-error-for="autoscale.regions[0].max_workers"]')
    expect(error).to_be_visible()
    editor.locator('input[data-path="autoscale.regions[0].max_workers"]').fill("3")
    page.locator('[data-action="save"]').click()
    expect(page.locator('[data-role="saved"]')).to_be_visible()
    saved = api.get("/v1/settings").json()["autoscale"]["regions"]
    assert saved == [
        {"region": "eu", "min_workers": 1, "max_workers": 3, "target_utilisation": 0.5,
         "cooldown": 30.0, "target_latency": None}
    ]  # fmt: skip
    assert api.put("/v1/settings", json=original).status_code == 200
    assert dash.script_errors() == []


def test_settings_page_edits_autoscale_settings_per_task_type(
    dash: Dashboard, api: httpx.Client
) -> None:
    original = api.get("/v1/settings").json()
    page = dash.page
    dash.goto("/settings")
    editor = page.locator('.rules[data-path="autoscale.task_types"]')
    add = editor.get_by_role("button", name="Add rule")
    for i, region in enumerate(["", ""]):  # the same type twice for every region: refused
        add.click()
        row = f"autoscale.task_types[{i}]"
        values = {"task_type": "render", "region": region, "min_workers": "0", "max_workers": "2"}
        for key, value in values.items():
            editor.locator(f'input[data-path="{row}.{key}"]').fill(value)
    page.locator('[data-action="save"]').click()
    error = page.locator('[data-error-for="autoscale.task_types[1].task_type"]')
    expect(error).to_contain_text("appears twice")
    # The second one for region gpu only: saved; blank cells took their defaults.
    editor.locator('input[data-path="autoscale.task_types[1].region"]').fill("gpu")
    editor.locator('input[data-path="autoscale.task_types[1].cooldown"]').fill("5")
    editor.locator('input[data-path="autoscale.task_types[1].target_latency"]').fill("0.5")
    page.locator('[data-action="save"]').click()
    expect(page.locator('[data-role="saved"]')).to_be_visible()
    saved = api.get("/v1/settings").json()["autoscale"]["task_types"]
    common = {"task_type": "render", "min_workers": 0, "max_workers": 2, "target_utilisation": 0.75}
    assert saved == [
        {**common, "region": None, "cooldown": 60.0, "target_latency": None},
        {**common, "region": "gpu", "cooldown": 5.0, "target_latency": 0.5},
    ]
    # Shown again after a reload: an empty region reads as blank, not "null".
    dash.goto("/settings")
    region = page.locator('input[data-path="autoscale.task_types[0].region"]')
    expect(region).to_have_value("")
    # The latency target: blank is off (null), a number turns it on.
    latency = page.locator('input[data-path="autoscale.target_latency"]')
    expect(latency).to_have_value("")
    latency.fill("2.5")
    page.locator('[data-action="save"]').click()
    expect(page.locator('[data-role="saved"]')).to_be_visible()
    assert api.get("/v1/settings").json()["autoscale"]["target_latency"] == 2.5
    page.locator('input[data-path="autoscale.target_latency"]').fill("")
    page.locator('[data-action="save"]').click()
    expect(page.locator('[data-role="saved"]')).to_be_visible()
    assert "target_latency" not in api.get("/v1/settings").json()["autoscale"]
    assert api.put("/v1/settings", json=original).status_code == 200
    assert dash.script_errors() == []
