"""Shared fixtures: a real nats-server per test, and an engine connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tierq import testing
from tierq.engine import ConnectOptions, EmbeddedNats, Engine, connect


@pytest.fixture
async def nats_server() -> AsyncIterator[EmbeddedNats]:
    """A JetStream nats-server on a free loopback port; stopped after the test."""
    async with testing.nats_server() as server:
        yield server


@pytest.fixture
async def engine(nats_server: EmbeddedNats) -> AsyncIterator[Engine]:
    """An :class:`Engine` connected to :func:`nats_server`; closed after the test."""
    eng = await connect(ConnectOptions(servers=[nats_server.url], name="tierq-test"))
    try:
        yield eng
    finally:
        await eng.close()
