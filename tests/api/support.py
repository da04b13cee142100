"""Helpers shared by the API tests."""

from __future__ import annotations

import asyncio
import json

import httpx

from tierq.api import ApiConfig
from tierq.config import NatsConfig
from tierq.engine import Engine

#: One token per role (long enough for the minimum length, obviously not secret).
TOKENS = {
    "read": "read-token-0123456789abcdef",
    "submit": "submit-token-0123456789abcdef",
    "worker": "worker-token-0123456789abcdef",
    "admin": "admin-token-0123456789abcdef",
}


def api_config(nats_url: str, *, tokens: bool = True, **overrides: object) -> ApiConfig:
    options: dict[str, object] = {
        # The API's NATS user when the test server has users (TIERQ_NATS_CREDENTIALS).
        "nats": NatsConfig.from_env(servers=nats_url).for_role("api"),
        "port": 0,
        "grpc_port": 0,
        "rate_limit": 0.0,
        "request_timeout": 5.0,
    }
    if tokens:
        options["tokens"] = ",".join(f"{role}:{role}:{token}" for role, token in TOKENS.items())
    options.update(overrides)
    return ApiConfig(**options)  # type: ignore[arg-type]


def auth_header(role: str | None) -> dict[str, str]:
    if role is None:
        return {}
    if role == "bogus":
        return {"authorization": "Bearer not-a-configured-token-at-all"}
    return {"authorization": f"Bearer {TOKENS[role]}"}


async def read_sse(
    http: httpx.AsyncClient,
    count: int,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    seconds: float = 20.0,
    opened: asyncio.Event | None = None,
) -> list[dict[str, str]]:
    """The first ``count`` events of ``GET /v1/events`` (fields id, event, data).

    ``opened`` is set once the response has started: the API opens the watch before it
    answers, so every event committed from then on reaches this reader.
    """

    async def read() -> list[dict[str, str]]:
        events: list[dict[str, str]] = []
        async with http.stream("GET", "/v1/events", params=params, headers=headers) as r:
            assert r.status_code == 200, await r.aread()
            assert r.headers["content-type"].startswith("text/event-stream")
            if opened is not None:
                opened.set()
            current: dict[str, str] = {}
            async for line in r.aiter_lines():
                if not line:
                    if "data" in current:
                        events.append(current)
                        if len(events) >= count:
                            return events
                    current = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    current[name] = value.removeprefix(" ")
        return events

    return await asyncio.wait_for(read(), seconds)


async def stream_last_sequence(engine: Engine, prefix: str = "tierq") -> int:
    info = json.loads(await engine.request(f"$JS.API.STREAM.INFO.{prefix.upper()}_EVENTS", b""))
    last: int = info["state"]["last_seq"]
    return last
