"""`tierq dev --autoscale`: the autoscaler runs in place of a fixed pool and follows the
settings as they change."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

import tierq
from tierq import TaskState
from tierq.config import NatsConfig
from tierq.core.settings import AutoscaleRegion, AutoscaleSettings, Settings
from tierq.dev import DevOptions, dev_stack
from tierq.engine import EmbeddedNats, Subjects, connect
from tierq.rpc import MasterClient

from .conftest import until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.mark.timeout(120)
async def test_dev_autoscale_follows_the_live_settings(
    nats_server: EmbeddedNats, module: str, tmp_path: Path
) -> None:
    opts = DevOptions(
        nats=NatsConfig.from_env(servers=nats_server.url),
        nats_url=nats_server.url,
        modules=[module],
        no_api=True,
        autoscale=True,
        data_dir=str(tmp_path / "data"),
        announce=lambda _: None,
    )
    admin = await connect(nats_server.connect_options("api", name="test-admin"))
    master = MasterClient(admin, Subjects("tierq"))
    async with dev_stack(opts) as stack, tierq.App(nats_server.url) as app:
        scaler = stack.autoscaler
        assert scaler is not None and stack.workers == []
        # Changed at run time (as the API's PUT /v1/settings does): the next check reads it,
        # the region's own entry in place of the defaults.
        own = AutoscaleRegion(region="default", min_workers=1, max_workers=2, cooldown=1.0)
        scale = AutoscaleSettings(min_workers=0, max_workers=8, regions=(own,))
        await master.put_settings(msgspec.msgpack.encode(Settings(autoscale=scale)))
        await until(lambda: scaler.status().actual == 1, 10, "min_workers 1 is kept")
        pending = [app.submit_nowait("a.nap", 0.05) for _ in range(300)]
        await app.flush()
        await until(lambda: scaler.status().actual == 2, 10, "up to max_workers on the backlog")
        tasks = await app.wait_tasks([p.id for p in pending], timeout=60)
        assert {(t.state, t.attempt) for t in tasks} == {(TaskState.SUCCEEDED, 1)}
        await until(lambda: scaler.status().actual == 1, 20, "back to min_workers")
        assert scaler.status().min_workers == 1 and scaler.status().max_workers == 2
    await admin.close()
    assert scaler.provider.workers == {}
    assert {code for _, code in scaler.status().exits} == {0}
