"""API servers for the tests: real nats-server, real uvicorn and gRPC listeners on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc.aio
import httpx
import pytest

from tierq.api import ApiServer
from tierq.engine import EmbeddedNats

from .support import api_config


@pytest.fixture
async def api(nats_server: EmbeddedNats) -> AsyncIterator[ApiServer]:
    """An API with a token per role, over NATS, with no master behind it."""
    async with ApiServer(api_config(nats_server.url)) as server:
        yield server


@pytest.fixture
async def http(api: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=20) as client:
        yield client


@pytest.fixture
async def channel(api: ApiServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(api.grpc_target) as ch:
        yield ch
