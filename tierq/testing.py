"""Public test kit: a real ``nats-server`` for your tests, no fakes.

::

    from tierq.testing import nats_server

    async def test_something():
        async with nats_server() as srv:
            engine = await connect(ConnectOptions(servers=[srv.url]))
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .engine.embedded import DEFAULT_MAX_PAYLOAD, EmbeddedNats, free_port

__all__ = ["EmbeddedNats", "free_port", "nats_server"]


@asynccontextmanager
async def nats_server(
    *,
    durable: bool = False,
    sync_always: bool = False,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
) -> AsyncIterator[EmbeddedNats]:
    """A JetStream ``nats-server`` on a free loopback port, in a temporary directory.

    The server is stopped and its directory removed on exit; ``srv.kill()`` and
    ``srv.restart()`` are available inside for fault tests (the store survives restarts).

    Args:
        durable: the durable profile, which fsyncs every write before acking it
            (implies ``sync_always``).
        sync_always: ``sync_interval: always`` on the server.
    """
    with tempfile.TemporaryDirectory(prefix="tierq-test-nats-") as tmp:
        server = EmbeddedNats(tmp, sync_always=sync_always or durable, max_payload=max_payload)
        try:
            await server.astart()
            yield server
        finally:
            await server.astop()
