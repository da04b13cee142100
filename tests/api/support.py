"""Helpers shared by the API tests."""

from __future__ import annotations

from tierq.api import ApiConfig
from tierq.config import NatsConfig

#: One token per role (long enough for the minimum length, obviously not secret).
TOKENS = {
    "read": "read-token-0123456789abcdef",
    "submit": "submit-token-0123456789abcdef",
    "worker": "worker-token-0123456789abcdef",
    "admin": "admin-token-0123456789abcdef",
}


def api_config(nats_url: str, *, tokens: bool = True, **overrides: object) -> ApiConfig:
    options: dict[str, object] = {
        "nats": NatsConfig(servers=(nats_url,)),
        "port": 0,
        "grpc_port": 0,
        "rate_limit": 0.0,
        "request_timeout": 5.0,
    }
    if tokens:
        options["tokens"] = ",".join(f"{role}:{token}" for role, token in TOKENS.items())
    options.update(overrides)
    return ApiConfig(**options)  # type: ignore[arg-type]


def auth_header(role: str | None) -> dict[str, str]:
    if role is None:
        return {}
    if role == "bogus":
        return {"authorization": "Bearer not-a-configured-token-at-all"}
    return {"authorization": f"Bearer {TOKENS[role]}"}
