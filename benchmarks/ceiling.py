"""The master's ceiling as regions grow: simulated regions speaking the real master protocol.

    python benchmarks/ceiling.py [--regions 1,10,100] [--workers 10000] [--tasks 20000]
        [--batch 1000] [--cluster] [--profile DIR]

One nats-server (the embedded one, file store, server defaults), or with ``--cluster`` three
clustered ones (every stream R3), and one ``tierq master`` process per round; in this
process, ``R`` simulated regions, each registering with the master, asking for work with
long-poll ``lease`` requests and reporting every task it gets as started and succeeded at
once (its share of ``--workers`` simulated workers listed in a report every second, as real
regions send them). A producer submits ``--tasks`` no-op tasks in batches of
``--batch`` (``--batch 1``: one awaited submit through the durable intake per task). Measured:
tasks/s from the first submit to the last outcome the master accepted, and the master
process's CPU time per task (user + system, from /proc), so the cost of more regions shows as
CPU per task, and the lifecycle events the master published per second (counted by a
subscriber to ``<prefix>.events.>``).

``--profile DIR`` samples the master with py-spy (``pip install py-spy``; not a dependency of
tierq) during each round's measured window, keeps the collapsed stacks in DIR and prints the
functions with the most samples, on their own and with what they call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
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
from tierq.engine.cluster import NatsCluster  # noqa: E402
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


class Servers:
    """One embedded nats-server, or a 3-node cluster."""

    def __init__(self, cluster: bool) -> None:
        tmp = tempfile.mkdtemp(prefix="tierq-ceiling-")
        self.cluster = NatsCluster(3, Path(tmp)) if cluster else None
        self.single = None if cluster else EmbeddedNats(tmp)

    @property
    def url(self) -> str:
        return self.cluster.url if self.cluster is not None else self.single.url  # type: ignore[union-attr]

    async def start(self) -> None:
        if self.cluster is not None:
            await self.cluster.astart()
        else:
            await self.single.astart()  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.cluster is not None:
            await self.cluster.astop()
        else:
            await self.single.astop()  # type: ignore[union-attr]


def start_profile(pid: int, out: Path) -> subprocess.Popen[bytes]:
    cmd = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "200"]
    cmd += ["--output", str(out), "--nonblocking"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise_profile(path: Path, top: int = 12) -> str:
    """The functions with the most samples: alone (the innermost frame) and inclusive."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    tierq_frames: set[str] = set()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        # "function (path/file.py:line)" -> "function (file.py)": one row per function.
        frames = [re.sub(r" \((?:.*/)?([^/]+?\.py):\d+\)$", r" (\1)", f) for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + n
        tierq_frames.update(
            short
            for short, full in zip(frames, stack.split(";"), strict=True)
            if "tierq/" in full and "/cli/" not in full and "__main__" not in full
        )
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n
    lines = [f"{total} samples"]
    for title, table in (("own", own), ("inclusive, tierq only", inclusive)):
        rows = sorted(table.items(), key=lambda kv: -kv[1])
        if title.startswith("inclusive"):
            rows = [r for r in rows if r[0] in tierq_frames]
        lines.append(f"  {title}:")
        lines += [f"    {100 * n / max(1, total):5.1f}%  {name}" for name, n in rows[:top]]
    return "\n".join(lines)


async def round_(
    regions: int, workers: int, tasks: int, batch: int, cluster: bool, profile: Path | None
) -> dict[str, float]:
    servers = Servers(cluster)
    await servers.start()
    master = spawn_master(servers.url)
    try:
        engine = await connect(
            NatsConfig(servers=tuple(servers.url.split(","))).connect_options(name="ceiling")
        )
        client = MasterClient(engine, Subjects(), timeout=30)
        deadline = time.monotonic() + 60
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
        events = 0

        async def count(_msg: object) -> None:
            nonlocal events
            events += 1

        counter = await engine.subscribe(Subjects().events_all, cb=count)
        await asyncio.sleep(1.0)
        sampler = None
        if profile is not None:
            out = profile / f"ceiling-{'cluster' if cluster else 'single'}-{regions}-{batch}.txt"
            sampler = start_profile(master.pid, out)
        events = 0
        cpu0, t0 = cpu_seconds(master.pid), time.perf_counter()
        app = tierq.App(servers.url, request_timeout=30)
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
        seen = events
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)
            sampler.wait(timeout=30)
            print(summarise_profile(out), file=sys.stderr, flush=True)
        await counter.unsubscribe()
        stop.set()
        await asyncio.gather(*running, return_exceptions=True)
        await app.close()
        await engine.close()
        return {
            "tasks_per_s": tasks / seconds,
            "events_per_s": seen / seconds,
            "cpu_ms_per_task": cpu * 1000 / tasks,
            "master_cpu_share": cpu / seconds,
        }
    finally:
        master.send_signal(signal.SIGTERM)
        master.wait(timeout=15)
        await servers.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--regions", default="1,10,100")
    parser.add_argument("--workers", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--cluster", action="store_true", help="a 3-node NATS cluster (R3)")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy output directory")
    args = parser.parse_args(argv)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(
        "| NATS | regions | simulated workers | submission | tasks/s | events/s "
        "| master CPU ms/task | master CPU share |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    shape = "one awaited submit per task" if args.batch == 1 else f"{args.batch} per call"
    nats = "3-node cluster, R3" if args.cluster else "one server"
    for r in (int(x) for x in args.regions.split(",")):
        out = asyncio.run(
            round_(r, args.workers, args.tasks, args.batch, args.cluster, args.profile)
        )
        print(
            f"| {nats} | {r} | {args.workers:,} | {shape} | {out['tasks_per_s']:,.0f} "
            f"| {out['events_per_s']:,.0f} | {out['cpu_ms_per_task']:.3f} "
            f"| {out['master_cpu_share']:.0%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
