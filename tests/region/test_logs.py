"""What a region says when it loses and finds the master again (issue 15, item 13)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tierq.config import RegionConfig
from tierq.engine import EmbeddedNats, connect
from tierq.region import Region
from tierq.testing import LocalCluster

pytestmark = pytest.mark.integration


async def test_a_region_says_when_the_master_answers_again(
    nats_server: EmbeddedNats, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tierq.region")
    cluster = LocalCluster(nats_server.url)
    nats = cluster.nats.for_role("region", "default")
    engine = await connect(nats.connect_options(name="tierq-test-region"))
    region = Region(RegionConfig(nats=nats), engine)
    lost = asyncio.Event()
    seen = _Seen("cannot reach the master", lost)
    logging.getLogger("tierq.region").addHandler(seen)
    task = asyncio.create_task(region.run())
    try:
        async with asyncio.timeout(20):  # no master yet: the registration fails, loudly
            await lost.wait()
        assert "answers again" not in caplog.text
        await cluster.start_master()
        async with asyncio.timeout(20):
            await region.ready.wait()
        lines = [r.getMessage() for r in caplog.records if "answers again" in r.getMessage()]
        assert len(lines) == 1, caplog.text
        assert lines[0].startswith("region default: the master answers again (unreachable ")
    finally:
        logging.getLogger("tierq.region").removeHandler(seen)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await engine.close()
        await cluster.close()


class _Seen(logging.Handler):
    """Sets ``event`` when a record containing ``text`` is logged."""

    def __init__(self, text: str, event: asyncio.Event) -> None:
        super().__init__()
        self.text, self.event = text, event

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()
