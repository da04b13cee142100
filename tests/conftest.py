"""Shared fixtures: a real nats-server per test, and an engine connected to it.

The server runs with one NATS user per role and least-privilege permissions, as in
production (``TIERQ_TEST_NATS_AUTH=0`` runs the suite against an open server instead). The
fixture points ``TIERQ_NATS_CREDENTIALS`` at the server's credentials file, so every tierq
process a test starts (services, SDK, CLI, worker processes) logs in as its own role.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tierq import testing
from tierq.engine import EmbeddedNats, Engine, connect

#: Whether test servers require a login (the default, as ``tierq dev`` does).
NATS_AUTH = os.environ.get("TIERQ_TEST_NATS_AUTH", "1") != "0"


@pytest.fixture
async def nats_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[EmbeddedNats]:
    """A JetStream nats-server on a free loopback port; stopped after the test."""
    for var in ("TIERQ_NATS_USER", "TIERQ_NATS_PASSWORD", "TIERQ_NATS_CREDENTIALS"):
        monkeypatch.delenv(var, raising=False)
    async with testing.nats_server(auth=NATS_AUTH) as server:
        if server.credentials_file is not None:
            monkeypatch.setenv("TIERQ_NATS_CREDENTIALS", str(server.credentials_file))
        yield server


@pytest.fixture
async def engine(nats_server: EmbeddedNats) -> AsyncIterator[Engine]:
    """An :class:`Engine` connected to :func:`nats_server` as the master; closed after the test."""
    eng = await connect(nats_server.connect_options("master", name="tierq-test"))
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
            or "open_engine" in fixtures
            or process_suites & set(item.path.parts)
            or item.get_closest_marker("e2e") is not None
            or item.get_closest_marker("browser") is not None
            or item.get_closest_marker("starts_nats") is not None
        ):
            item.add_marker(pytest.mark.integration)


ConnectAs = Callable[..., Awaitable[Engine]]


@pytest.fixture
async def connect_as(nats_server: EmbeddedNats) -> AsyncIterator[ConnectAs]:
    """Connect as the NATS user of a role: ``await connect_as("worker", region="eu")``."""
    engines: list[Engine] = []

    async def connect_role(role: str, region: str = "default", **options: Any) -> Engine:
        eng = await connect(
            nats_server.connect_options(role, region, name=f"tierq-test-{role}", **options)
        )
        engines.append(eng)
        return eng

    try:
        yield connect_role
    finally:
        for eng in engines:
            await eng.close()


@pytest.fixture
async def open_engine() -> AsyncIterator[Engine]:
    """An :class:`Engine` on a server without users: for engine mechanics on names of a
    test's own (other prefixes, other streams), which no tierq role is allowed."""
    async with testing.nats_server(auth=False) as server:
        eng = await connect(server.connect_options(name="tierq-test"))
        try:
            yield eng
        finally:
            await eng.close()
