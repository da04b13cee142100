"""The dashboard on an API with tokens: login, session cookie, CSRF, roles."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from .conftest import ADMIN_TOKEN, READ_TOKEN, Dashboard, LiveStack

pytestmark = pytest.mark.browser

expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=15_000)


@pytest.fixture
def secured(browser: Any, stack: LiveStack) -> Any:
    assert stack.auth_api is not None
    d = Dashboard(browser, stack.auth_api.url)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def admin_api(stack: LiveStack) -> Any:
    assert stack.auth_api is not None
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=stack.auth_api.url, headers=headers, timeout=20) as client:
        yield client


def login(d: Dashboard, token: str) -> None:
    d.page.locator("#token").fill(token)
    d.page.locator("#login button[type=submit]").click()


def test_unauthenticated_visit_is_refused_and_login_works(
    secured: Dashboard, admin_api: httpx.Client
) -> None:
    page = secured.page
    base = secured.base
    # Pages redirect to the login page; the API answers 401.
    for path in ("/", "/index.html", "/js/main.js"):
        page.goto(base + path)
        assert page.url == f"{base}/login.html", path
    assert page.request.get(f"{base}/v1/tasks").status == 401
    assert page.request.get(f"{base}/v1/stats").status == 401
    secured.shot("login")

    login(secured, "not-a-token-of-this-server-0123")
    expect(page.locator("#login-error")).to_contain_text("Login refused")
    assert page.url == f"{base}/login.html"

    login(secured, ADMIN_TOKEN)
    page.wait_for_url(f"{base}/")
    expect(page.locator("#who")).to_have_text("env-1 · admin")
    expect(page.locator('[data-metric="succeeded-total"]')).to_have_text(re.compile(r"^[\d,]+$"))
    # The session cookie is HttpOnly and SameSite=Strict: no script can read it.
    cookie = next(c for c in secured.context.cookies() if c["name"] == "tierq_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert "tierq_session" not in page.evaluate("document.cookie")
    assert ADMIN_TOKEN not in page.content()

    # Every change needs the CSRF token of the session; reads do not.
    status = "(init) => fetch('/v1/tasks/unknown-task/cancel', init).then(r => r.status)"
    assert page.evaluate(status, {"method": "POST"}) == 403
    csrf = page.evaluate("fetch('/v1/session').then(r => r.json()).then(s => s.csrf_token)")
    assert page.evaluate(status, {"method": "POST", "headers": {"x-csrf-token": "wrong"}}) == 403
    assert page.evaluate(status, {"method": "POST", "headers": {"x-csrf-token": csrf}}) == 404
    # A request from another origin is refused whatever it carries.
    other = page.request.post(
        f"{base}/v1/tasks/unknown-task/cancel",
        headers={"origin": "http://evil.example", "x-csrf-token": csrf},
    )
    assert other.status == 403

    # An action from the page goes through with the session (and its CSRF token).
    task_id = admin_api.post(
        "/v1/tasks", json={"name": "b.quick", "args": [1], "region": "nowhere"}
    ).json()["id"]
    secured.goto(f"/tasks/{task_id}")
    page.locator('[data-action="cancel"]').click()
    page.locator('[data-role="confirm-ok"]').click()
    expect(page.locator('[data-role="task-state"]')).to_have_text("cancelled")

    # Logging out ends the session on the server, not only in this browser.
    page.locator("#logout").click()
    # Polls the URL: waiting for the load event can see the logout's own navigation aborted
    # by the redirect that follows it (net::ERR_ABORTED).
    expect(page).to_have_url(f"{base}/login.html")
    r = page.request.get(f"{base}/", max_redirects=0)
    assert r.status == 303 and r.headers["location"] == "/login.html"
    page.goto(f"{base}/")
    page.wait_for_url(f"{base}/login.html")
    assert secured.script_errors() == []


def test_read_only_session_sees_refusals(secured: Dashboard, admin_api: httpx.Client) -> None:
    page = secured.page
    page.goto(secured.base + "/")
    login(secured, READ_TOKEN)
    page.wait_for_url(f"{secured.base}/")
    expect(page.locator("#who")).to_have_text("env-2 · read")
    secured.goto("/settings")
    expect(page.locator('[data-action="save"]')).to_be_disabled()
    task_id = admin_api.post(
        "/v1/tasks", json={"name": "b.quick", "args": [2], "region": "nowhere"}
    ).json()["id"]
    secured.goto(f"/tasks/{task_id}")
    page.locator('[data-action="cancel"]').click()
    page.locator('[data-role="confirm-ok"]').click()
    expect(page.locator('[data-role="action-error"]')).to_contain_text("does not allow 'submit'")
    assert admin_api.get(f"/v1/tasks/{task_id}").json()["state"] == "ready"
    admin_api.post(f"/v1/tasks/{task_id}/cancel")
    assert secured.script_errors() == []
