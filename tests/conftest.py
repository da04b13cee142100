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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``integration`` every test that starts a real nats-server, whatever its module
    says: those using the ``nats_server`` fixture (directly or through another fixture), and
    the process-level suites (e2e, chaos, browser). ``pytest -m "not integration"`` is then the
    NATS-free part of the suite."""
    process_suites = {"browser", "chaos", "e2e"}
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if (
            "nats_server" in fixtures
            or process_suites & set(item.path.parts)
            or item.get_closest_marker("e2e") is not None
            or item.get_closest_marker("browser") is not None
            or item.get_closest_marker("starts_nats") is not None
        ):
            item.add_marker(pytest.mark.integration)
