"""The autoscaler as others see it: the API's /v1/autoscalers, `tierq regions`,
`tierq workers`, and its decisions on the API's event feed."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import pytest

from tests.api.support import api_config, auth_header
from tierq.api import ApiServer
from tierq.core.settings import AutoscaleSettings

from .conftest import ClusterWith, running_autoscaler, until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


async def cli(*argv: str) -> str:
    env = {**os.environ, "COLUMNS": "250"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tierq", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.timeout(120)
async def test_the_api_and_the_cli_show_the_autoscaler(
    cluster_with: ClusterWith, module: str, tmp_path: Path
) -> None:
    scale = AutoscaleSettings(min_workers=1, max_workers=3, cooldown=60.0)
    async with (
        cluster_with(scale) as cluster,
        running_autoscaler(cluster, module, tmp_path / "state") as scaler,
        ApiServer(api_config(cluster.nats_url)) as api,
        httpx.AsyncClient(base_url=api.url, headers=auth_header("read")) as http,
    ):
        await until(lambda: scaler.status().starting == 0 and scaler.status().actual == 1, 20,
                    "one worker registered")  # fmt: skip
        reply = (await http.get("/v1/autoscalers")).json()
        (only,) = reply["autoscalers"]
        assert (only["region"], only["desired"], only["actual"]) == ("default", 1, 1)
        assert (only["min_workers"], only["max_workers"], only.get("error")) == (1, 3, None)
        assert only["decisions"][0]["reason"].startswith("within min_workers 1")
        # The feed accepts the decisions' kind (the dashboard's events page asks for it).
        for kinds, status in (("autoscale_decision", 200), ("autoscale_nonsense", 422)):
            async with http.stream("GET", "/v1/events", params={"kinds": kinds}) as feed:
                assert feed.status_code == status
        url = cluster.nats_url
        regions = await cli("regions", "--nats", url)
        assert "1 desired / 1 live" in regions and "within min_workers 1" in regions
        as_json = json.loads(await cli("regions", "--nats", url, "--json"))
        assert as_json[0]["autoscaler"]["desired"] == 1
        workers = await cli("workers", "--nats", url)
        (worker,) = scaler.provider.live()
        assert worker.id in workers and "1 desired / 1 live" in workers


@pytest.mark.timeout(120)
async def test_two_pools_in_one_region_are_both_shown(
    cluster_with: ClusterWith, module: str, tmp_path: Path
) -> None:
    """Two autoscalers in one region, each for the task types of its own modules: the API,
    `tierq regions` and its JSON list both (they answer the same status subject)."""
    other = f"{module}_b"
    source = (tmp_path / f"{module}.py").read_text()
    (tmp_path / f"{other}.py").write_text(source.replace('name="a.', 'name="b.'))
    scale = AutoscaleSettings(min_workers=0, max_workers=2, cooldown=60.0)
    async with (
        cluster_with(scale) as cluster,
        running_autoscaler(cluster, module, tmp_path / "a") as first,
        running_autoscaler(cluster, other, tmp_path / "b") as second,
        ApiServer(api_config(cluster.nats_url)) as api,
        httpx.AsyncClient(base_url=api.url, headers=auth_header("read")) as http,
    ):
        await until(lambda: first.status().checked_at and second.status().checked_at, 10,
                    "both checked once")  # fmt: skip
        reply = (await http.get("/v1/autoscalers")).json()
        pools = sorted(tuple(a["task_types"]) for a in reply["autoscalers"])
        assert pools == sorted([tuple(first.task_types), tuple(second.task_types)])
        assert {a["region"] for a in reply["autoscalers"]} == {"default"}
        url = cluster.nats_url
        regions = await cli("regions", "--nats", url)
        for scaler in (first, second):
            assert ", ".join(scaler.task_types) in regions
        (row,) = json.loads(await cli("regions", "--nats", url, "--json"))
        assert len(row["autoscalers"]) == 2
        assert row["autoscaler"] == row["autoscalers"][0]
