"""Admission limits reach the SDK as BackpressureError with a retry-after hint."""

from __future__ import annotations

from types import ModuleType

import pytest

import tierq
from tierq import BackpressureError
from tierq.testing import LocalCluster

pytestmark = pytest.mark.integration


async def test_full_queue_rejects_then_accepts_after_draining(
    small_cluster: LocalCluster, tasks_module: ModuleType
) -> None:
    async with tierq.App(small_cluster.nats_url) as app:
        handles = await app.submit_many(tasks_module.add.spec(i, 1) for i in range(5))
        with pytest.raises(BackpressureError) as info:
            await app.submit(tasks_module.add, 100, 1)
        assert info.value.retry_after >= 1.0
        with pytest.raises(BackpressureError):  # a batch is admitted whole or not at all
            await app.submit_many([tasks_module.add.spec(1, 1), tasks_module.add.spec(2, 2)])
        await small_cluster.start_worker(tasks_module.__name__)
        await app.wait_tasks([h.id for h in handles], timeout=20)
        late = await app.submit(tasks_module.add, 100, 1)
        assert await late.result(timeout=20) == 101
