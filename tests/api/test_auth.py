"""Tokens, roles and rate limits (no network)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from tierq.api.auth import (
    ANONYMOUS,
    Authenticator,
    Permission,
    Role,
    TokenEntry,
    is_loopback,
    load_tokens,
)
from tierq.api.errors import RateLimitedError
from tierq.errors import InvalidRequestError, PermissionDeniedError, UnauthenticatedError

SECRET = "s3cret-token-with-enough-length"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_env_tokens() -> None:
    entries = load_tokens(env=f"admin:{SECRET},ci:submit:{SECRET}x")
    assert [(e.name, e.role) for e in entries] == [("env-1", Role.ADMIN), ("ci", Role.SUBMIT)]


@pytest.mark.parametrize("env", ["admin", "boss:" + SECRET, "a:b:c:d"])
def test_env_tokens_refuse_garbage(env: str) -> None:
    with pytest.raises(InvalidRequestError):
        Authenticator(load_tokens(env=env))


def test_file_tokens_with_hashes(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    path.write_text(
        json.dumps(
            {
                "tokens": [
                    {"name": "dash", "role": "read", "sha256": digest},
                    {"name": "ci", "role": "submit", "token": SECRET + "-ci", "rate": 5},
                ]
            }
        )
    )
    path.chmod(0o600)
    auth = Authenticator(load_tokens(str(path)))
    assert auth.authenticate(f"Bearer {SECRET}").name == "dash"
    ci = auth.authenticate(f"bearer {SECRET}-ci")
    assert ci.role is Role.SUBMIT
    assert ci.bucket is not None and ci.bucket.rate == 5


def test_file_tokens_refuse_unknown_fields(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"tokens": [{"name": "x", "role": "read", "secret": SECRET}]}))
    with pytest.raises(InvalidRequestError, match="invalid"):
        load_tokens(str(path))


def test_missing_tokens_file() -> None:
    with pytest.raises(InvalidRequestError, match="cannot read"):
        load_tokens("/nonexistent/tokens.json")


def test_world_readable_tokens_file_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"tokens": []}))
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, "tierq.api"):
        load_tokens(str(path))
    assert "readable by others" in caplog.text


@pytest.mark.parametrize(
    "entries",
    [
        [TokenEntry(name="a", role=Role.READ, token="short")],
        [TokenEntry(name="a", role=Role.READ)],
        [TokenEntry(name="a", role=Role.READ, sha256="abc")],
        [
            TokenEntry(name="a", role=Role.READ, token=SECRET),
            TokenEntry(name="a", role=Role.ADMIN, token=SECRET + "2"),
        ],
        [
            TokenEntry(name="a", role=Role.READ, token=SECRET),
            TokenEntry(name="b", role=Role.ADMIN, token=SECRET),
        ],
    ],
    ids=["short", "no-secret", "bad-hash", "same-name", "same-secret"],
)
def test_bad_token_configs(entries: list[TokenEntry]) -> None:
    with pytest.raises(InvalidRequestError):
        Authenticator(entries)


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer   ", f"Basic {SECRET}", "Bearer wrong-token-xxxxxxxx", "x" * 5000],
)
def test_authenticate_refuses(header: str | None) -> None:
    auth = Authenticator([TokenEntry(name="a", role=Role.READ, token=SECRET)])
    with pytest.raises(UnauthenticatedError):
        auth.authenticate(header)


MATRIX = {
    Role.READ: {Permission.READ},
    Role.SUBMIT: {Permission.READ, Permission.SUBMIT},
    Role.WORKER: {Permission.WORK},
    Role.ADMIN: set(Permission),
}


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
@pytest.mark.parametrize("permission", list(Permission), ids=lambda p: p.value)
def test_role_matrix(role: Role, permission: Permission) -> None:
    auth = Authenticator([TokenEntry(name="t", role=role, token=SECRET)])
    who = auth.authenticate(f"Bearer {SECRET}")
    if permission in MATRIX[role]:
        auth.authorize(who, permission)
    else:
        with pytest.raises(PermissionDeniedError, match=role.value):
            auth.authorize(who, permission)


def test_open_mode_is_anonymous_admin() -> None:
    auth = Authenticator([])
    assert auth.open
    who = auth.authenticate(None)
    assert who.name == ANONYMOUS and who.role is Role.ADMIN


def test_rate_limit_per_token() -> None:
    clock = Clock()
    auth = Authenticator(
        [
            TokenEntry(name="a", role=Role.READ, token=SECRET),
            TokenEntry(name="b", role=Role.READ, token=SECRET + "b"),
        ],
        rate=2.0,
        burst=3.0,
        clock=clock,
    )
    a = auth.authenticate(f"Bearer {SECRET}")
    b = auth.authenticate(f"Bearer {SECRET}b")
    for _ in range(3):
        auth.authorize(a, Permission.READ)
    with pytest.raises(RateLimitedError) as info:
        auth.authorize(a, Permission.READ)
    assert info.value.retry_after == pytest.approx(0.5)
    auth.authorize(b, Permission.READ)  # another token has its own bucket
    clock.now += 0.5
    auth.authorize(a, Permission.READ)


def test_denied_calls_do_not_spend_the_rate() -> None:
    clock = Clock()
    auth = Authenticator(
        [TokenEntry(name="a", role=Role.READ, token=SECRET)], rate=1.0, burst=1.0, clock=clock
    )
    who = auth.authenticate(f"Bearer {SECRET}")
    with pytest.raises(PermissionDeniedError):
        auth.authorize(who, Permission.ADMIN)
    auth.authorize(who, Permission.READ)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_open_api_on_loopback_is_announced(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "tierq.api"):
        Authenticator([]).check_bind(["127.0.0.1", "::1"], insecure=False)
    assert "OPEN" in caplog.text


def test_open_api_beyond_loopback_refuses() -> None:
    with pytest.raises(InvalidRequestError, match="--insecure"):
        Authenticator([]).check_bind(["127.0.0.1", "0.0.0.0"], insecure=False)


def test_open_api_beyond_loopback_with_insecure(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "tierq.api"):
        Authenticator([]).check_bind(["0.0.0.0"], insecure=True)
    assert "insecure" in caplog.text


def test_tokens_allow_any_bind() -> None:
    Authenticator([TokenEntry(name="a", role=Role.READ, token=SECRET)]).check_bind(
        ["0.0.0.0"], insecure=False
    )
