"""The dashboard's API additions over plain HTTP: sessions, CSRF, Origin, drains, headers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .conftest import ADMIN_TOKEN, READ_TOKEN, LiveStack


@pytest.fixture
def secured(stack: LiveStack) -> Iterator[httpx.Client]:
    assert stack.auth_api is not None
    with httpx.Client(base_url=stack.auth_api.url, timeout=20) as client:
        yield client


@pytest.fixture
def open_api(stack: LiveStack) -> Iterator[httpx.Client]:
    assert stack.open_api is not None
    with httpx.Client(base_url=stack.open_api.url, timeout=20) as client:
        yield client


def test_login_sets_a_strict_http_only_cookie(secured: httpx.Client) -> None:
    anonymous = secured.get("/v1/session").json()
    assert anonymous["open"] is False and anonymous["authenticated"] is False
    assert anonymous["csrf_token"] is None
    r = secured.post("/v1/session", json={"token": ADMIN_TOKEN})
    assert r.status_code == 201, r.text
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("tierq_session=")
    for part in ("HttpOnly", "SameSite=Strict", "Path=/"):
        assert part in cookie
    body = r.json()
    assert body["role"] == "admin" and body["authenticated"] is True
    csrf = body["csrf_token"]
    assert len(csrf) >= 32
    # The cookie authenticates reads; a change needs the CSRF token as well.
    assert secured.get("/v1/stats").status_code == 200
    assert secured.post("/v1/tasks/nope/cancel").status_code == 403
    assert secured.post("/v1/tasks/nope/cancel", headers={"x-csrf-token": csrf}).status_code == 404
    # A bearer token is not subject to CSRF (it cannot be sent by another site).
    bearer = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=str(secured.base_url), headers=bearer) as api:
        assert api.post("/v1/tasks/nope/cancel").status_code == 404
    # Logging out needs the CSRF token too, and ends the session.
    assert secured.delete("/v1/session").status_code == 403
    assert secured.delete("/v1/session", headers={"x-csrf-token": csrf}).status_code == 204
    assert secured.get("/v1/stats").status_code == 401


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"", "application/json", 400),
        (b"{", "application/json", 400),
        (b"[]", "application/json", 422),
        (b'{"token": 5}', "application/json", 422),
        (b'{"token": "x", "extra": 1}', "application/json", 422),
        (b'{"token": ""}', "application/json", 422),
        (b"token=x", "application/x-www-form-urlencoded", 415),
        (b'{"token": "not-a-configured-token-0000"}', "application/json", 401),
    ],
)
def test_bad_logins_are_refused_cleanly(
    secured: httpx.Client, body: bytes, content_type: str, status: int
) -> None:
    r = secured.post("/v1/session", content=body, headers={"content-type": content_type})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "set-cookie" not in r.headers


def test_cross_origin_changes_are_refused(open_api: httpx.Client) -> None:
    evil = {"origin": "http://evil.example"}
    assert open_api.post("/v1/tasks/nope/cancel", headers=evil).status_code == 403
    site = {"sec-fetch-site": "cross-site"}
    assert open_api.post("/v1/tasks/nope/cancel", headers=site).status_code == 403
    same = {"origin": str(open_api.base_url).rstrip("/")}
    assert open_api.post("/v1/tasks/nope/cancel", headers=same).status_code == 404
    # Reads are not affected.
    assert open_api.get("/v1/stats", headers=evil).status_code == 200


def test_pages_carry_a_strict_policy(open_api: httpx.Client, secured: httpx.Client) -> None:
    page = open_api.get("/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert open_api.get("/v1/session").json()["open"] is True
    # With tokens, pages need a session; the login page and its assets do not.
    r = secured.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login.html"
    for path in ("/login.html", "/login.js", "/app.css", "/favicon.svg"):
        assert secured.get(path).status_code == 200, path


def test_drains_need_admin_and_a_known_region(secured: httpx.Client) -> None:
    assert secured.post("/v1/regions/default/drain").status_code == 401
    read = {"authorization": f"Bearer {READ_TOKEN}"}
    assert secured.post("/v1/regions/default/drain", headers=read).status_code == 403
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    r = secured.post("/v1/regions/nowhere/drain", headers=admin)
    assert r.status_code == 404 and "nowhere" in r.json()["detail"]
    r = secured.post("/v1/regions/default/workers/no-such-worker/drain", headers=admin)
    assert r.status_code == 404
    assert secured.post("/v1/regions/bad.name/drain", headers=admin).status_code == 422
