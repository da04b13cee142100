"""The local provider with real worker processes: up on a burst, back to zero, nothing lost or
run twice; a SIGKILLed worker replaced; a restarted autoscaler finds its workers."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest

import tierq
from tierq import TaskState
from tierq.autoscale import local
from tierq.core.settings import AutoscaleSettings
from tierq.engine import EmbeddedNats, Message, connect
from tierq.protocol import QueryKind, QueryRequest, WorkersReply

from .conftest import ClusterWith, running_autoscaler, until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

WORKERS = QueryRequest(kind=QueryKind.WORKERS)


@pytest.mark.timeout(240)
async def test_a_burst_scales_up_drains_and_returns_to_zero(
    cluster_with: ClusterWith, module: str, tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    scale = AutoscaleSettings(min_workers=0, max_workers=4, cooldown=3.0)
    events: list[dict[str, object]] = []
    api = await connect(nats_server.connect_options("api", name="test-events"))

    async def on_event(msg: Message) -> None:
        events.append(json.loads(msg.data))

    await api.subscribe("tierq.events.autoscale_decision", cb=on_event)
    async with (
        cluster_with(scale) as cluster,
        running_autoscaler(cluster, module, tmp_path / "state") as scaler,
        tierq.App(cluster.nats_url) as app,
    ):
        assert scaler.status().actual == 0  # min_workers 0: nothing runs while idle
        pending = [app.submit_nowait("a.nap", 0.05) for _ in range(2_000)]
        await app.flush()
        ids = [p.id for p in pending]
        await until(lambda: scaler.status().actual >= 2, 10, "workers rise on the backlog")
        peak = 0

        def drained() -> bool:
            nonlocal peak
            peak = max(peak, scaler.status().actual)
            return scaler.status().actual == 0 and not scaler.provider.workers

        await until(drained, 180, "the backlog drains and the workers go after the cool-down")
        tasks = await app.wait_tasks(ids, timeout=10)
        assert len({t.id for t in tasks}) == 2_000
        # Nothing lost, nothing run twice: every task succeeded on its first attempt.
        assert {(t.state, t.attempt) for t in tasks} == {(TaskState.SUCCEEDED, 1)}
        status = scaler.status()
        assert peak == 4 and status.restarts == 0
        # Every worker was drained and exited 0 (no attempt cut short: none was retried).
        assert status.exits and {code for _, code in status.exits} == {0}
        directions = [d.direction for d in status.decisions]
        assert directions[0] == "up" and status.decisions[0].reason.startswith("from zero")
        assert directions[-1] == "down" and status.decisions[-1].desired == 0
    await api.flush()
    await api.close()
    assert [e["desired"] for e in events] == [d.desired for d in status.decisions]
    assert {e["kind"] for e in events} == {"autoscale_decision"}


@pytest.mark.timeout(120)
async def test_a_sigkilled_worker_is_replaced_and_its_attempts_requeued(
    cluster_with: ClusterWith, module: str, tmp_path: Path
) -> None:
    scale = AutoscaleSettings(min_workers=1, max_workers=1, cooldown=60.0)
    async with (
        cluster_with(scale) as cluster,
        running_autoscaler(cluster, module, tmp_path / "state") as scaler,
        tierq.App(cluster.nats_url) as app,
    ):
        await until(lambda: len(scaler.provider.live()) == 1, 10, "min_workers 1 starts one")
        (doomed,) = scaler.provider.live()
        handles = [await app.submit("a.nap", 1.0) for _ in range(3)]
        async with asyncio.timeout(20):
            while True:
                if [(await h.status()).state for h in handles] == [TaskState.RUNNING] * 3:
                    break
                await asyncio.sleep(0.05)
        doomed.kill()
        await until(
            lambda: [w.id for w in scaler.provider.live()] not in ([], [doomed.id]),
            10,
            "a replacement starts",
        )
        status = scaler.status()
        assert status.restarts == 1 and (doomed.id, -signal.SIGKILL) in status.exits
        for task in await app.wait_tasks([h.id for h in handles], timeout=40):
            # Re-queued when the killed worker's lease went, run again on the replacement.
            assert (task.state, task.attempt) == (TaskState.SUCCEEDED, 2)


@pytest.mark.timeout(120)
async def test_a_restarted_autoscaler_finds_its_workers(
    cluster_with: ClusterWith, module: str, tmp_path: Path
) -> None:
    scale = AutoscaleSettings(min_workers=2, max_workers=2, cooldown=60.0)
    state = tmp_path / "state"
    async with cluster_with(scale) as cluster:
        async with running_autoscaler(cluster, module, state, keep_workers=True) as first:
            await until(lambda: len(first.provider.live()) == 2, 10, "two workers start")
            await until(lambda: first.status().starting == 0, 20, "they register")
            pids = sorted(w.pid for w in first.provider.live())
        # Left running (keep_workers): the next autoscaler takes them over, starts none.
        assert len(list((state / "default").glob("*.json"))) == 2
        async with running_autoscaler(cluster, module, state) as second:
            assert sorted(w.pid for w in second.provider.live()) == pids
            assert all(w.proc is None for w in second.provider.live())
            await second.check()
            assert sorted(w.pid for w in second.provider.live()) == pids
        # Stopped without keep_workers: they were drained and are gone, files too.
        assert not second.provider.workers and not list((state / "default").glob("*.json"))
        assert sorted(code for _, code in second.status().exits) == [0, 0]
        # The first provider's process objects know it too (else they warn at exit).
        assert not [proc for proc in local._RELEASED if proc.pid in pids]


@pytest.mark.timeout(120)
async def test_tierq_autoscale_command_runs_and_drains_on_sigterm(
    cluster_with: ClusterWith, module: str, tmp_path: Path
) -> None:
    """The CLI as a process: its own NATS role, a worker for min_workers 1, and SIGTERM
    drains that worker before it exits 0."""
    scale = AutoscaleSettings(min_workers=1, max_workers=2, cooldown=60.0)
    async with cluster_with(scale) as cluster, tierq.App(cluster.nats_url) as app:
        master = await app.master()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tierq", "autoscale", module,
            "--nats", cluster.nats_url, "--region", "default", "--concurrency", "2",
            "--state-dir", str(tmp_path / "state"), "--interval", "0.2",
        )  # fmt: skip
        try:
            async with asyncio.timeout(30):
                while True:
                    workers = (await master.query(WORKERS, WorkersReply)).workers
                    if [w.id for w in workers if w.id.startswith("autoscale-default-")]:
                        break
                    await asyncio.sleep(0.1)
            assert len(list((tmp_path / "state" / "default").glob("*.json"))) == 1
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                assert await proc.wait() == 0
            # Its worker was drained (its file removed once it had exited).
            assert list((tmp_path / "state" / "default").glob("*.json")) == []
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
