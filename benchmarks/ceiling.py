"""The master's ceiling as regions grow: simulated regions speaking the real master protocol.

    python benchmarks/ceiling.py [--regions 1,10,100] [--workers 10000] [--tasks 20000]
        [--batch 1000]

One nats-server (the embedded one, file store, server defaults) and one ``tierq master``
process per round; in this process, ``R`` simulated regions, each registering with the master,
asking for work with long-poll ``lease`` requests and reporting every task it gets as started and
succeeded at once (its share of ``--workers`` simulated workers listed in a report every
second, as real regions send them). A producer submits ``--tasks`` no-op tasks in batches of
``--batch`` (``--batch 1``: one awaited submit through the durable intake per task). Measured:
tasks/s from the first submit to the last outcome the master accepted, and the master
process's CPU time per task (user + system, from /proc), so the cost of more regions shows as
CPU per task.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from schedules import cpu_seconds  # noqa: E402

import tierq  # noqa: E402
from tierq.config import NatsConfig  # noqa: E402
from tierq.core.model import Outcome, OutcomeKind, RegionInfo, Started, TaskSpec  # noqa: E402
from tierq.engine import EmbeddedNats, Subjects, connect  # noqa: E402
from tierq.protocol import (  # noqa: E402
    LeaseReply,
    LeaseRequest,
    QueryKind,
    QueryRequest,
    RegionReport,
    RegionReportReply,
    RegisterRegionReply,
    RegisterRegionRequest,
    StatsReply,
    WorkerView,
)
from tierq.rpc import MasterClient  # noqa: E402

TYPES = ("noop",)


def spawn_master(url: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "tierq", "--log-level", "warning", "master", "--nats", url]
    return subprocess.Popen(cmd, env=env, cwd=ROOT)


class Tally:
    """Tasks the simulated regions got, and an event once all of them have."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.all_done = asyncio.Event()

    def add(self, n: int) -> None:
        self.count += n
        if self.count >= self.target:
            self.all_done.set()


class SimRegion:
    """One region: lease, report started + succeeded at once, list its workers every second."""

    def __init__(
        self, client: MasterClient, name: str, workers: int, slots: int, tally: Tally
    ) -> None:
        self.client = client
        self.tally = tally
        self.name = name
        self.instance = uuid.uuid4().hex
        self.slots = slots
        self.views = [
            WorkerView(
                id=f"{name}-w{i}", region=name, task_types=list(TYPES), concurrency=1, running=0
            )
            for i in range(workers)
        ]
        self._last_views = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        info = RegionInfo(name=self.name, instance=self.instance, task_types=TYPES)
        await self.client.call("register", RegisterRegionRequest(info=info), RegisterRegionReply)
        while not stop.is_set():
            req = LeaseRequest(region=self.name, instance=self.instance, slots=self.slots, wait=1.0)
            reply = await self.client.call("lease", req, LeaseReply, timeout=30)
            now = time.monotonic()
            if not reply.tasks and now - self._last_views < 1.0:
                continue
            started = [
                Started(task_id=t.id, attempt=t.attempt, worker=self.views[0].id)
                for t in reply.tasks
            ]
            outcomes = [
                Outcome(task_id=t.id, attempt=t.attempt, kind=OutcomeKind.SUCCEEDED)
                for t in reply.tasks
            ]
            views = None
            if now - self._last_views >= 1.0:
                views, self._last_views = self.views, now
            report = RegionReport(
                region=self.name,
                instance=self.instance,
                started=started,
                outcomes=outcomes,
                workers=views,
            )
            await self.client.call("report", report, RegionReportReply, timeout=30)
            self.tally.add(len(reply.tasks))


async def round_(regions: int, workers: int, tasks: int, batch: int) -> dict[str, float]:
    server = EmbeddedNats(tempfile.mkdtemp(prefix="tierq-ceiling-"))
    await server.astart()
    master = spawn_master(server.url)
    try:
        engine = await connect(NatsConfig(servers=(server.url,)).connect_options(name="ceiling"))
        client = MasterClient(engine, Subjects(), timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                await client.query(QueryRequest(kind=QueryKind.STATS), StatsReply)
                break
            except tierq.TierqError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        per_region = max(1, workers // regions)
        tally = Tally(tasks)
        sims = [SimRegion(client, f"r{i}", per_region, per_region, tally) for i in range(regions)]
        stop = asyncio.Event()
        running = [asyncio.create_task(s.run(stop)) for s in sims]
        await asyncio.sleep(1.0)
        cpu0, t0 = cpu_seconds(master.pid), time.perf_counter()
        app = tierq.App(server.url, request_timeout=30)
        if batch == 1:
            for i in range(tasks):
                await app.submit("noop", i)
        else:
            for start in range(0, tasks, batch):
                n = min(batch, tasks - start)
                await client.submit([TaskSpec(name="noop", args=[start + i]) for i in range(n)])
        await tally.all_done.wait()
        seconds = time.perf_counter() - t0
        cpu = cpu_seconds(master.pid) - cpu0
        stop.set()
        await asyncio.gather(*running, return_exceptions=True)
        await app.close()
        await engine.close()
        return {
            "tasks_per_s": tasks / seconds,
            "cpu_ms_per_task": cpu * 1000 / tasks,
            "master_cpu_share": cpu / seconds,
        }
    finally:
        master.send_signal(signal.SIGTERM)
        master.wait(timeout=15)
        await server.astop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--regions", default="1,10,100")
    parser.add_argument("--workers", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args(argv)
    print(
        "| regions | simulated workers | submission | tasks/s | master CPU ms/task "
        "| master CPU share |"
    )
    print("|---:|---:|---|---:|---:|---:|")
    shape = "one awaited submit per task" if args.batch == 1 else f"{args.batch} per call"
    for r in (int(x) for x in args.regions.split(",")):
        out = asyncio.run(round_(r, args.workers, args.tasks, args.batch))
        print(
            f"| {r} | {args.workers:,} | {shape} | {out['tasks_per_s']:,.0f} "
            f"| {out['cpu_ms_per_task']:.3f} | {out['master_cpu_share']:.0%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
