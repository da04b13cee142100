"""Where one task's work goes: CPU per process, messages per connection, events per kind.

    python benchmarks/cost.py [--tasks 5000] [--runs 2] [--sync-always]

The W1 shape of ``benchmarks/throughput.py``: nats-server, master, region and two workers, each
its own process, and this process as the producer, awaiting one ``App.submit`` per no-op task
(through the durable intake). Each run measures, over the submits and the tasks' completion:

* CPU seconds per task of every process (user + system, from ``/proc/<pid>/stat``), the
  producer's own included (on uvloop, as ``e2e.py`` runs it). On a 2-core machine their sum
  bounds the rate: a sum of 1 ms per task cannot run more than about 2,000 tasks/s, however
  the work is spread;
* messages per task each connection sent to nats-server and received from it (its ``/connz``
  monitoring endpoint), and nats-server's write system calls per task (sockets and its stores'
  files, from ``/proc/<pid>/io``);
* messages per task the lifecycle-event stream (``<PREFIX>_EVENTS``) stored, by kind.

Each run is done twice in turn: as deployed, and with the events stream deleted after start
(the events are still published; nothing stores them), which prices the stream alone. Linux
only (``/proc``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import throughput  # noqa: E402

import tierq  # noqa: E402
from tierq.config import NatsConfig  # noqa: E402
from tierq.engine import Subjects, connect  # noqa: E402
from tierq.rpc import MasterClient  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
ROLES = ("master", "region", "worker 1", "worker 2")


@dataclass
class Run:
    events_stream: bool
    rate: float
    #: CPU microseconds per task, by process.
    cpu_us: dict[str, float]
    #: (messages in, messages out) per task, by connection name (in: sent by the client).
    messages: dict[str, tuple[float, float]]
    nats_writes: float
    #: Events stored per task, by kind (empty without the stream).
    events: dict[str, float] = field(default_factory=dict)


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _writes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    return 0


def _connections(port: int) -> dict[str, tuple[int, int]]:
    url = f"http://127.0.0.1:{port}/connz?limit=1000"
    with urllib.request.urlopen(url, timeout=5) as response:
        found = json.load(response)["connections"]
    out: dict[str, tuple[int, int]] = {}
    for conn in found:
        name = conn.get("name") or "unnamed"
        key = name if name not in out else f"{name} #{conn['cid']}"
        out[key] = (conn["in_msgs"], conn["out_msgs"])
    return out


async def measure(n_tasks: int, sync_always: bool, events_stream: bool) -> Run:
    stack = throughput.Stack(sync_always, concurrency=8, prefetch=64)
    await stack.start()
    try:
        engine = await connect(NatsConfig(servers=(stack.nats.url,)).connect_options(name="probe"))
        client = MasterClient(engine, Subjects(), timeout=30)
        app = tierq.App(stack.nats.url, request_timeout=30)
        await throughput._warm_up(client)
        await asyncio.sleep(1.0)
        stream = f"{Subjects().prefix.upper()}_EVENTS"
        if not events_stream:
            await engine.js.delete_stream(stream)
        else:
            await engine.js.purge_stream(stream)
        assert stack.nats.pid is not None
        pids = {"producer": os.getpid(), "nats-server": stack.nats.pid}
        pids.update({role: p.pid for role, p in zip(ROLES, stack.procs, strict=True)})
        cpu0 = {role: _cpu(pid) for role, pid in pids.items()}
        writes0 = _writes(stack.nats.pid)
        conns0 = _connections(stack.nats.monitor_port)
        t0 = time.perf_counter()
        ids = [(await app.submit("noop", i)).id for i in range(n_tasks)]
        await client.wait(ids, timeout=120)
        seconds = time.perf_counter() - t0
        await asyncio.sleep(0.5)  # the last reports and their events
        cpu = {role: (_cpu(pid) - cpu0[role]) / n_tasks * 1e6 for role, pid in pids.items()}
        writes = (_writes(stack.nats.pid) - writes0) / n_tasks
        conns = _connections(stack.nats.monitor_port)
        messages = {
            name: (
                (i - conns0.get(name, (0, 0))[0]) / n_tasks,
                (o - conns0.get(name, (0, 0))[1]) / n_tasks,
            )
            for name, (i, o) in conns.items()
            if name != "probe" and (i, o) != conns0.get(name, (0, 0))
        }
        events: dict[str, float] = {}
        if events_stream:
            info = await engine.js.stream_info(stream, subjects_filter=">")
            for subject, count in (info.state.subjects or {}).items():
                events[subject.rsplit(".", 1)[-1]] = count / n_tasks
        await app.close()
        await engine.close()
        return Run(events_stream, n_tasks / seconds, cpu, messages, writes, events)
    finally:
        stack.stop()


def _median(runs: list[Run], key: str) -> float:
    return statistics.median(r.cpu_us[key] for r in runs)


def report(runs: list[Run], n_tasks: int, sync_always: bool) -> str:
    with_stream = [r for r in runs if r.events_stream]
    without = [r for r in runs if not r.events_stream]
    profile = "sync_interval: always" if sync_always else "server defaults"
    lines = [
        f"{n_tasks:,} no-op tasks, one awaited `App.submit` each, {profile}; medians of "
        f"{len(with_stream)} run(s) of each shape, in turn.",
        "",
        "| process | CPU µs per task | without the events stream |",
        "|---|---:|---:|",
    ]
    for role in ("producer", "nats-server", *ROLES):
        lines.append(
            f"| {role} | {_median(with_stream, role):,.0f} | {_median(without, role):,.0f} |"
        )
    total = statistics.median(sum(r.cpu_us.values()) for r in with_stream)
    total_without = statistics.median(sum(r.cpu_us.values()) for r in without)
    lines.append(f"| **sum** | **{total:,.0f}** | **{total_without:,.0f}** |")
    rate = statistics.median(r.rate for r in with_stream)
    rate_without = statistics.median(r.rate for r in without)
    lines.append(f"| tasks/s | {rate:,.0f} | {rate_without:,.0f} |")
    writes = statistics.median(r.nats_writes for r in with_stream)
    writes_without = statistics.median(r.nats_writes for r in without)
    lines.append(f"| nats-server write calls per task | {writes:.1f} | {writes_without:.1f} |")
    lines += ["", "| connection | messages sent per task | received per task |", "|---|---:|---:|"]
    names = sorted({name for r in with_stream for name in r.messages})
    for name in names:
        sent = statistics.median(r.messages.get(name, (0.0, 0.0))[0] for r in with_stream)
        got = statistics.median(r.messages.get(name, (0.0, 0.0))[1] for r in with_stream)
        lines.append(f"| {name} | {sent:.2f} | {got:.2f} |")
    kinds = sorted({k for r in with_stream for k in r.events})
    stored = " · ".join(
        f"{k} {statistics.median(r.events.get(k, 0.0) for r in with_stream):.2f}" for k in kinds
    )
    lines += ["", f"Events stored per task: {stored}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--sync-always", action="store_true")
    args = parser.parse_args(argv)
    throughput._install_uvloop()  # as the e2e producer runs
    runs: list[Run] = []
    for _ in range(args.runs):
        for stream in (True, False):
            run = asyncio.run(measure(args.tasks, args.sync_always, stream))
            print(
                f"  events stream {'on ' if stream else 'off'}: {run.rate:,.0f} tasks/s, "
                f"{sum(run.cpu_us.values()):,.0f} µs CPU per task",
                flush=True,
            )
            runs.append(run)
    print(report(runs, args.tasks, args.sync_always))


if __name__ == "__main__":
    main()
