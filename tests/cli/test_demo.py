"""The demo's workflow and side tasks run to the end on a real stack."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

import tierq
from tierq.demo import build, run_demo
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
