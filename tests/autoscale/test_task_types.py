"""A pool's settings come from its task types' entries in ``autoscale.task_types``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierq.core.settings import AutoscaleSettings, AutoscaleTaskType
from tierq.engine import Subjects, connect
from tierq.rpc import MasterClient

from .conftest import ClusterWith, running_autoscaler, until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.mark.timeout(120)
async def test_the_local_provider_follows_its_task_types_settings(
    cluster_with: ClusterWith, module: str, tmp_path: Path
) -> None:
    # The region's settings say 0 workers while nothing waits; a.nap's own entry says 2.
    nap = AutoscaleTaskType(task_type="a.nap", min_workers=2, max_workers=2, cooldown=0.0)
    scale = AutoscaleSettings(min_workers=0, max_workers=4, task_types=(nap,))
    async with (
        cluster_with(scale) as cluster,
        running_autoscaler(cluster, module, tmp_path / "state") as scaler,
    ):
        await until(lambda: len(scaler.provider.live()) == 2, 30, "two workers for a.nap")
        status = scaler.status()
        assert (status.min_workers, status.max_workers, status.desired) == (2, 2, 2)
        # Changed at run time as `tierq settings set` does (the operator's merge patch).
        engine = await connect(cluster.nats.for_role("operator").connect_options(name="op"))
        try:
            entry = {"task_type": "a.nap", "min_workers": 1, "max_workers": 1, "cooldown": 0}
            await MasterClient(engine, Subjects()).patch_settings(
                {"autoscale": {"task_types": [entry]}}
            )
        finally:
            await engine.close()
        await until(lambda: scaler.status().desired == 1, 10, "the new bounds read")
        await until(
            lambda: len(scaler.provider.live()) == 1 and not scaler.provider.draining(),
            30,
            "one worker drained",
        )
        assert (scaler.status().min_workers, scaler.status().max_workers) == (1, 1)
