"""The demo's workflow and side tasks run to the end on a real stack."""

from __future__ import annotations

import asyncio
import io

import pytest
from rich.console import Console

import tierq
from tierq.demo import app as demo_app
from tierq.demo import build, run_demo, until_served
from tierq.testing import LocalCluster

pytestmark = pytest.mark.integration


def test_the_demo_workflow_shape() -> None:
    spec = build(tierq.App("nats://127.0.0.1:1")).spec()
    keys = [n.key for n in spec.nodes]
    assert keys[-1] == "report" and len(keys) == 8
    assert ("load-orders", "report") in spec.edges and ("load-customers", "report") in spec.edges


async def test_run_demo_end_to_end(cluster: LocalCluster) -> None:
    await cluster.start_worker("tierq.demo", concurrency=4)
    screen = io.StringIO()
    async with tierq.App(cluster.nats_url) as app:
        results = await run_demo(app, Console(file=screen, width=120))
        assert "loaded 200 order rows" in results["report"]
        page = await app.list_tasks(name="tierq.demo.enrich")
        (enrich,) = page.tasks
        assert enrich.attempt == 2  # the planned failure, then a successful retry
    assert "done:" in screen.getvalue()


async def test_the_demo_waits_for_its_workers(cluster: LocalCluster) -> None:
    """``tierq dev --demo`` submits only once a worker runs every demo task type, so a new
    user's first run prints no "no live worker runs task type" warnings."""
    names = set(demo_app.tasks)
    async with tierq.App(cluster.nats_url) as app:
        assert not await until_served(app, names, timeout=0.3)  # no worker yet
        waiting = asyncio.create_task(until_served(app, names))
        await cluster.start_worker("tierq.demo", concurrency=2)
        assert await waiting
        assert not await until_served(app, {"no.such.type"}, timeout=0.3)
