"""Schedules at scale: N schedules firing every minute on a real ``tierq master`` process.

    python benchmarks/schedules.py [--n 10000] [--minutes 3] [--shared] [--write docs/benchmarks.md]

``make bench`` runs it with these defaults (5 to 6 minutes: 20 s of idle CPU, making the
schedules, up to a minute until the next whole one, the window, reading the fires back) and
prints the table; ``--write`` puts it in docs/benchmarks.md, ``--shared`` says there that the
machine ran other work.

A real ``nats-server`` (file store, server defaults) and one ``tierq master`` process, no
region and no workers: each fire submits a task that stays queued, so the figure is the
master's cost of deciding a fire, submitting its run and appending both to the log. N
schedules ``* * * * *`` (every minute, UTC) are made through the SDK; then, over whole
minutes, the master's CPU time (user + system, from ``/proc``) is read, less its idle CPU
measured over the same time before the schedules existed, and divided by the fires in the
window. Lateness is ``at - fire_time`` of each scheduled fire (when the master decided it,
minus the nominal fire time): the time from the minute's start until the fire's events were
handed to the log (their append adds the log's latency, a few milliseconds, not included).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import msgspec  # noqa: E402
from core_bench import machine, write_section  # noqa: E402

import tierq  # noqa: E402
from tierq.core import AdmissionSettings, Settings  # noqa: E402
from tierq.engine.embedded import EmbeddedNats  # noqa: E402
from tierq.errors import TierqError  # noqa: E402
from tierq.protocol import QueryKind, QueryRequest, StatsReply  # noqa: E402

START = "<!-- schedules:start -->"
END = "<!-- schedules:end -->"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def spawn_master(url: str, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "tierq", "master", "--nats", url]
    out = open(log, "ab")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    return proc


async def wait_serving(app: tierq.App, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            master = await app.master()
            await master.call("query", QueryRequest(kind=QueryKind.STATS), StatsReply, timeout=1.0)
            return
        except TierqError:
            await asyncio.sleep(0.05)
    raise TimeoutError(f"no master answered within {timeout} s")


async def until_minute(offset: float) -> float:
    """Sleep until ``offset`` seconds past the next whole minute; returns that minute."""
    now = time.time()
    minute = (now // 60 + 1) * 60
    await asyncio.sleep(minute + offset - now)
    return minute


async def run(n: int, minutes: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="tierq-schedules-") as tmp:
        nats = EmbeddedNats(os.path.join(tmp, "nats"))
        await nats.astart()
        master_proc = spawn_master(nats.url, Path(tmp) / "master.log")
        app = tierq.App(nats=nats.url, request_timeout=60.0)
        try:
            await wait_serving(app, 30)
            master = await app.master()
            limit = n * (minutes + 3)
            big = Settings(
                admission=AdmissionSettings(max_queued=limit, max_queued_per_queue=limit)
            )
            await master.put_settings(msgspec.msgpack.encode(big))
            idle_start = cpu_seconds(master_proc.pid)
            await asyncio.sleep(20.0)
            idle_per_s = (cpu_seconds(master_proc.pid) - idle_start) / 20.0
            made = time.perf_counter()
            sem = asyncio.Semaphore(64)

            async def one(i: int) -> None:
                async with sem:
                    await app.schedules.create(f"s{i:05d}", "bench.never", cron="* * * * *")

            await asyncio.gather(*(one(i) for i in range(n)))
            create_s = time.perf_counter() - made
            # Measure from just before a minute's fires to just before the one after the last.
            first = await until_minute(-5.0)
            cpu0 = cpu_seconds(master_proc.pid)
            await asyncio.sleep(first + 60 * minutes - 5.0 - time.time())
            cpu1 = cpu_seconds(master_proc.pid)
            window = 60.0 * minutes
            lateness: list[float] = []
            for i in range(n):
                view = await app.schedules.get(f"s{i:05d}")
                lateness += [
                    r.at - r.fire_time
                    for r in view.recent
                    if r.kind == "scheduled" and first <= r.fire_time < first + window
                ]
        finally:
            await app.close()
            master_proc.terminate()
            await asyncio.to_thread(master_proc.wait)
            await nats.astop()
    fires = len(lateness)
    busy = (cpu1 - cpu0) - idle_per_s * window
    lateness.sort()
    return {
        "n": n,
        "minutes": minutes,
        "fires": fires,
        "create_s": create_s,
        "cpu_s": cpu1 - cpu0,
        "idle_cpu_per_s": idle_per_s,
        "cpu_per_fire_us": 1e6 * busy / fires if fires else float("nan"),
        "late_p50_ms": 1e3 * statistics.median(lateness) if lateness else float("nan"),
        "late_p99_ms": 1e3 * lateness[int(0.99 * (fires - 1))] if lateness else float("nan"),
        "late_max_ms": 1e3 * lateness[-1] if lateness else float("nan"),
    }


def table(row: dict[str, object], when: str, note: str) -> str:
    """The docs' table; ``note`` says what else the machine was doing."""
    return "\n".join(
        [
            f"Measured {when} on {machine()} with `python benchmarks/schedules.py --n "
            f"{row['n']} --minutes {row['minutes']}`; {note}.",
            "",
            "| schedules | window | fires | master CPU per fire | lateness p50 | p99 | max |"
            " creating them |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {row['n']:,} | {row['minutes']} min | {row['fires']:,} | "
            f"{row['cpu_per_fire_us']:.0f} µs | {row['late_p50_ms']:.0f} ms | "
            f"{row['late_p99_ms']:.0f} ms | {row['late_max_ms']:.0f} ms | "
            f"{row['create_s']:.1f} s |",
            "",
            f"Master CPU in the window: {row['cpu_s']:.1f} s, less its idle "
            f"{row['idle_cpu_per_s'] * 1000:.1f} ms/s measured before the schedules existed.",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--shared", action="store_true", help="the machine ran other work")
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    row = asyncio.run(run(args.n, args.minutes))
    note = f"the load average was {load:.1f} before and {os.getloadavg()[0]:.1f} after"
    if args.shared:
        note += (
            "; the machine was shared with other sessions' test runs, so the figures are "
            "upper bounds of a quiet machine's"
        )
    when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = table(row, when, note)
    print(text)
    if args.write is not None:
        write_section(args.write, START, END, f"{START}\n{text}\n{END}")


if __name__ == "__main__":
    main()
