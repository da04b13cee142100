"""API servers for the tests: real nats-server, real uvicorn and gRPC listeners on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc.aio
import httpx
import pytest

from tierq.api import ApiServer
from tierq.core.settings import Settings
from tierq.engine import EmbeddedNats
from tierq.testing import LocalCluster, local_cluster

from .support import api_config, auth_header


@pytest.fixture
async def api(nats_server: EmbeddedNats) -> AsyncIterator[ApiServer]:
    """An API with a token per role, over NATS, with no master behind it.

    The master client resends while nobody answers (a failover); a short request timeout
    keeps "no master" a quick 503 here.
    """
    async with ApiServer(api_config(nats_server.url, request_timeout=0.3)) as server:
        yield server


@pytest.fixture
async def http(api: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=20) as client:
        yield client


@pytest.fixture
async def channel(api: ApiServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(api.grpc_target) as ch:
        yield ch


class Stack:
    """nats-server, master and region in this process, and an API in front of them."""

    def __init__(self, cluster: LocalCluster, api: ApiServer, http: httpx.AsyncClient) -> None:
        self.cluster = cluster
        self.api = api
        self.http = http


@pytest.fixture
async def stack(nats_server: EmbeddedNats) -> AsyncIterator[Stack]:
    async with (
        local_cluster(
            nats_server.url,
            settings=Settings(region_lease_seconds=3.0),
            worker_lease_seconds=1.5,
            heartbeat_interval=0.3,
        ) as cluster,
        ApiServer(api_config(nats_server.url)) as api,
        httpx.AsyncClient(base_url=api.url, timeout=30, headers=auth_header("admin")) as http,
    ):
        yield Stack(cluster, api, http)


@pytest.fixture
async def stack_channel(stack: Stack) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(stack.api.grpc_target) as ch:
        yield ch
