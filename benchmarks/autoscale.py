"""A burst against an autoscaled pool and against a fixed pool of the same maximum size.

    python benchmarks/autoscale.py [--tasks 10000] [--task-ms 50] [--workers 4] [--slots 8]

One nats-server, the master and one region in this process, workers as real ``tierq worker``
processes. Each mode submits ``--tasks`` tasks of ``--task-ms`` (an async sleep) as one
pipelined burst and reports, from the first submission:

* **all busy**: every slot of ``--workers`` workers running a task (the master's worker view,
  read every 50 ms);
* **drained**: every task of the burst succeeded.

``autoscaled``: ``tierq autoscale``'s Autoscaler with min_workers 0, max_workers ``--workers``,
no worker running when the burst arrives (it starts them on the backlog). ``fixed``: the
``--workers`` workers started and registered before the burst. Afterwards the autoscaled
mode also reports how long until it was back to zero workers (cool-down 5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tierq  # noqa: E402
from tierq.autoscale import AutoscaleConfig, Autoscaler  # noqa: E402
from tierq.core.settings import AutoscaleSettings, Settings  # noqa: E402
from tierq.engine import Subjects, connect  # noqa: E402
from tierq.protocol import QueryKind, QueryRequest, WorkersReply  # noqa: E402
from tierq.rpc import MasterClient  # noqa: E402
from tierq.testing import LocalCluster, local_cluster, nats_server  # noqa: E402

TASKS = """
import asyncio
import tierq

app = tierq.App()

@app.task(name="bench.sleep")
async def sleep(ms):
    await asyncio.sleep(ms / 1000)
"""


async def busy_slots(master: MasterClient) -> tuple[int, int]:
    reply = await master.query(QueryRequest(kind=QueryKind.WORKERS), WorkersReply)
    live = [w for w in reply.workers if not w.draining]
    return len(live), sum(w.running for w in live)


async def burst(
    cluster: LocalCluster, args: argparse.Namespace, master: MasterClient
) -> dict[str, float]:
    """Submit the burst; times (s) from its first submission to all busy and to drained."""
    slots = args.workers * args.slots
    async with tierq.App(cluster.nats_url) as app:
        t0 = time.perf_counter()
        pending = [app.submit_nowait("bench.sleep", args.task_ms) for _ in range(args.tasks)]
        await app.flush()
        submitted = time.perf_counter() - t0
        all_busy = None
        while all_busy is None:
            workers, running = await busy_slots(master)
            if workers == args.workers and running >= slots:
                all_busy = time.perf_counter() - t0
            else:
                await asyncio.sleep(0.05)
        tasks = await app.wait_tasks([p.id for p in pending], timeout=600)
        drained = time.perf_counter() - t0
    assert all(t.state is tierq.TaskState.SUCCEEDED for t in tasks)
    return {"submitted": submitted, "all_busy": all_busy, "drained": drained}


async def fixed(args: argparse.Namespace, url: str, master: MasterClient) -> dict[str, float]:
    async with local_cluster(url, heartbeat_interval=0.5) as cluster:
        for _ in range(args.workers):
            cluster.spawn_worker(args.module, concurrency=args.slots)
        while (await busy_slots(master))[0] < args.workers:  # noqa: ASYNC110 (polls the master)
            await asyncio.sleep(0.1)
        return await burst(cluster, args, master)


async def autoscaled(args: argparse.Namespace, url: str, master: MasterClient) -> dict[str, float]:
    scale = AutoscaleSettings(min_workers=0, max_workers=args.workers, cooldown=5.0)
    async with local_cluster(
        url, heartbeat_interval=0.5, settings=Settings(autoscale=scale)
    ) as cluster:
        engine = await connect(cluster.nats.for_role("autoscaler").connect_options(name="bench"))
        with tempfile.TemporaryDirectory() as state:
            config = AutoscaleConfig(
                nats=cluster.nats,
                modules=(args.module,),
                concurrency=args.slots,
                state_dir=state,
                interval=0.5,
            )
            scaler = Autoscaler(config, engine)
            running = asyncio.create_task(scaler.run())
            await scaler.ready.wait()
            try:
                times = await burst(cluster, args, master)
                t0 = time.perf_counter()
                while scaler.status().actual or scaler.provider.workers:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
                times["back_to_zero_after_drain"] = time.perf_counter() - t0
                times["peak_decisions"] = max(d.desired for d in scaler.status().decisions)
            finally:
                scaler.stop()
                await running
                await engine.close()
    return times


async def run_bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bench_autoscale_tasks.py").write_text(TASKS)
        sys.path.insert(0, tmp)
        os.environ["PYTHONPATH"] = os.pathsep.join([tmp, str(ROOT)])
        args.module = "bench_autoscale_tasks"
        results = {}
        for name, run in (("fixed", fixed), ("autoscaled", autoscaled)):
            # A server (and so a log) of its own for each mode.
            async with nats_server() as server:
                assert server.credentials_file is not None
                os.environ["TIERQ_NATS_CREDENTIALS"] = str(server.credentials_file)
                observer = await connect(server.connect_options("client", name="bench-observer"))
                master = MasterClient(observer, Subjects("tierq"))
                results[name] = await run(args, server.url, master)
                await observer.close()
            print(name, {k: round(v, 2) for k, v in results[name].items()}, flush=True)
    print(f"\n{args.tasks} tasks of {args.task_ms} ms, {args.workers} workers x {args.slots} slots")
    print("| pool | submitted (s) | all slots busy (s) | drained (s) |")
    print("|---|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['submitted']:.2f} | {r['all_busy']:.2f} | {r['drained']:.2f} |")


def main(argv: list[str] | None = None) -> None:
    """``make bench`` calls this (it used to find a coroutine function here and skip it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--task-ms", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--slots", type=int, default=8)
    asyncio.run(run_bench(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
