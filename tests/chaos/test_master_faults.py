"""Faults of the leader with a standby running: real processes, real signals, a real proxy.

Each scenario runs the stack of ``harness.py`` under a steady submission load, injects one
fault into the leader, and then asserts the contract: every acknowledged submission ran at
least once and succeeded, nothing acknowledged is missing, every extra run is a counted
attempt, no read during the fault contradicted an earlier acknowledgement, and a master
started cold from the log shows exactly what the live one did. The figures of each run are
appended to ``artifacts/chaos.jsonl`` (``docs/reliability.md`` quotes them).

``make test`` runs the scenarios marked ``chaos``; ``make chaos`` adds the long ones
(``chaos_full``).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest

from tests.chaos.harness import Producer, Reader, Report, Stack, check, cold_restart_equals_live
from tests.chaos.harness import settle as settle_tasks
from tierq.core import AdmissionSettings, Settings, TaskSpec
from tierq.engine import Subjects
from tierq.protocol import QueryKind, QueryRequest, StatsReply
from tierq.rpc import MasterClient

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
RATE = 150.0
#: Failover after the leader dies or freezes, with the default settings: the target is under
#: 3 s (measured 1.8-2.4 s, docs/reliability.md); the assertion leaves half a second for a
#: 2-core machine that runs the seven processes of the stack and the test itself.
FAILOVER_BOUND = 3.5

Fault = Callable[[Stack, Report], Awaitable[None]]


async def run(
    tmp_path: Path,
    name: str,
    fault: Fault,
    *,
    seconds: float,
    sync_always: bool = False,
    leader_env: dict[str, str] | None = None,
    rate: float = RATE,
    task_ms: float = 5.0,
    settle: float = 90.0,
    producer_type: type[Producer] = Producer,
) -> Report:
    stack = Stack(tmp_path, sync_always=sync_always)
    report = Report(name)
    try:
        await stack.start(leader_env=leader_env)
        assert stack.app is not None
        total = int(rate * (seconds + 6))
        producer = producer_type(stack.app, total, rate, task_ms)
        reader = Reader(stack.app, producer)
        producing = asyncio.create_task(producer.run())
        reading = asyncio.create_task(reader.run())
        await asyncio.sleep(2.0)
        await fault(stack, report)
        await producing
        reader.stop()
        await reading
        tasks = await settle_tasks(stack.app, list(producer.acked.values()), timeout=settle)
        if settle > 90:  # a backlog beyond the producer's keys: wait for it to drain too
            await _drained(stack, settle)
        check(report, producer, tasks, stack.ledger)
        report.stale_reads = reader.stale + reader.regressions
        await cold_restart_equals_live(stack, tasks, report)
    finally:
        await stack.close()
    _record(report)
    return report


async def _drained(stack: Stack, timeout: float) -> None:
    assert stack.app is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        master = await stack.app.master()
        stats = (await master.query(QueryRequest(kind=QueryKind.STATS), StatsReply)).stats
        t = stats.totals
        if t.succeeded + t.dead + t.cancelled + t.skipped == t.submitted:
            return
        await asyncio.sleep(1.0)
    raise AssertionError(f"the backlog did not drain within {timeout} s")


def _record(report: Report) -> None:
    out = ROOT / "artifacts" / "chaos.jsonl"
    out.parent.mkdir(exist_ok=True)
    row = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scenario": report.scenario,
        "acknowledged": report.acknowledged,
        "executions": report.executions,
        "duplicates": report.duplicates,
        "retried": report.retried,
        "max_ack_gap_s": round(report.max_ack_gap, 2),
        "failover_s": None if report.failover is None else round(report.failover, 2),
        "stale_reads": len(report.stale_reads),
        "problems": len(report.problems),
    }
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(report.line())


def assert_kept_promises(report: Report) -> None:
    assert report.acknowledged > 0
    assert not report.problems, "\n".join(report.problems[:20])
    assert not report.stale_reads, "\n".join(report.stale_reads[:20])


async def _failover(stack: Stack, old: str) -> float:
    """Seconds until a master other than ``old`` holds the lease and answers."""
    start = time.monotonic()
    deadline = start + 30
    while time.monotonic() < deadline:
        holder = await stack.leader()
        if holder not in (None, old):
            await stack.wait_leader(holder, timeout=30)
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"nobody took over from {old}")


def sigstop(seconds: float) -> Fault:
    async def fault(stack: Stack, report: Report) -> None:
        leader = await stack.leader()
        assert leader == "m1"
        stack.signal("m1", signal.SIGSTOP)
        failover_task = asyncio.create_task(_failover(stack, "m1"))
        await asyncio.sleep(seconds)
        stack.signal("m1", signal.SIGCONT)
        report.failover = await failover_task

    return fault


def sigkill() -> Fault:
    async def fault(stack: Stack, report: Report) -> None:
        assert await stack.leader() == "m1"
        await stack.kill("m1")
        report.failover = await _failover(stack, "m1")

    return fault


def blackhole(seconds: float, *, cut: bool = False) -> Fault:
    async def fault(stack: Stack, report: Report) -> None:
        assert stack.proxy is not None and await stack.leader() == "m1"
        if cut:
            stack.proxy.cut()
        else:
            stack.proxy.blackhole()
        failover_task = asyncio.create_task(_failover(stack, "m1"))
        await asyncio.sleep(seconds)
        stack.proxy.heal()
        report.failover = await failover_task
        await asyncio.sleep(3.0)  # m1 comes back as a standby; the load goes on meanwhile
        assert stack.procs["m1"].poll() is None, "the cut-off master exited"

    return fault


@pytest.mark.chaos
async def test_leader_paused_8s(tmp_path: Path) -> None:
    report = await run(tmp_path, "leader SIGSTOP 8 s", sigstop(8.0), seconds=8.0)
    assert_kept_promises(report)
    assert report.failover is not None and report.failover < FAILOVER_BOUND


@pytest.mark.chaos
async def test_leader_killed(tmp_path: Path) -> None:
    report = await run(tmp_path, "leader SIGKILL", sigkill(), seconds=3.0)
    assert_kept_promises(report)
    assert report.failover is not None and report.failover < FAILOVER_BOUND


@pytest.mark.chaos
async def test_leader_link_blackholed_15s(tmp_path: Path) -> None:
    report = await run(tmp_path, "leader link black-holed 15 s", blackhole(15.0), seconds=15.0)
    assert_kept_promises(report)
    assert report.failover is not None and report.failover < FAILOVER_BOUND


@pytest.mark.chaos_full
async def test_leader_paused_30s(tmp_path: Path) -> None:
    report = await run(tmp_path, "leader SIGSTOP 30 s", sigstop(30.0), seconds=30.0)
    assert_kept_promises(report)
    assert report.failover is not None and report.failover < FAILOVER_BOUND


@pytest.mark.chaos_full
async def test_leader_link_blackholed_30s(tmp_path: Path) -> None:
    report = await run(tmp_path, "leader link black-holed 30 s", blackhole(30.0), seconds=30.0)
    assert_kept_promises(report)


@pytest.mark.chaos_full
@pytest.mark.parametrize("seconds", [15.0, 30.0])
async def test_leader_link_cut(tmp_path: Path, seconds: float) -> None:
    report = await run(
        tmp_path, f"leader link cut {seconds:.0f} s", blackhole(seconds, cut=True), seconds=seconds
    )
    assert_kept_promises(report)


@pytest.mark.chaos_full
@pytest.mark.timeout(900)
async def test_burst_then_leader_restart(tmp_path: Path) -> None:
    """200,000 tasks submitted in batches on top of the steady load, then the leader is
    restarted (SIGTERM and a new process) while the backlog drains."""
    burst_ids: list[str] = []

    async def fault(stack: Stack, report: Report) -> None:
        assert stack.app is not None
        master = await stack.app.master()
        limit = 500_000
        big = Settings(admission=AdmissionSettings(max_queued=limit, max_queued_per_queue=limit))
        async with stack.engine_as("api") as api:  # settings are the API's to change
            await MasterClient(api, Subjects()).put_settings(msgspec.msgpack.encode(big))
        for b in range(200):
            specs = [
                TaskSpec(name="chaos.work", args=[f"b{b * 1000 + i}", 0.0]) for i in range(1000)
            ]
            burst_ids.extend(await master.submit(specs))
        await stack.stop_process("m1")
        stack.spawn("m1b", "master", "--holder", "m1b")
        loop = asyncio.get_running_loop()
        start = loop.time()
        await stack.wait_leader(timeout=60)
        report.failover = loop.time() - start

    report = await run(tmp_path, "200k burst, then leader SIGTERM", fault, seconds=10.0, settle=600)
    assert_kept_promises(report)
    assert len(burst_ids) == 200_000
