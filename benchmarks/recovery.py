"""How long a restarted master with a large backlog takes to serve again, and its memory.

    python benchmarks/recovery.py [--n 1000000] [--snapshot-every 200000]
                                  [--write docs/benchmarks.md]

A real ``nats-server`` (file store, server defaults) and ``tierq master`` processes: N tasks
are submitted in batches of 1,000 with no workers, so all N stay queued in the master's state.
Then the master is stopped with SIGTERM (it releases the lease) and a new one is started; the
figure is the wall time from its start until it answers a stats query, with the breakdown its
log gives (snapshot sequence, events replayed from the log tail). Two shapes:

* ``snapshot``: snapshots every ``--snapshot-every`` events, so the restart loads a snapshot
  and replays at most that many events;
* ``log``: no snapshot is taken (``--snapshot-every`` above N's event count), so the restart
  replays the whole log.

Also reported: the leader's resident memory (RSS) with N tasks queued.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import os
import re
import signal
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
from tierq.core import AdmissionSettings, Settings, TaskSpec  # noqa: E402
from tierq.engine.embedded import EmbeddedNats  # noqa: E402
from tierq.errors import TierqError  # noqa: E402
from tierq.protocol import QueryKind, QueryRequest, StatsReply  # noqa: E402

START = "<!-- recovery:start -->"
END = "<!-- recovery:end -->"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def spawn_master(url: str, log: Path, snapshot_every: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "tierq", "master", "--nats", url]
    cmd += ["--snapshot-every", str(snapshot_every)]
    out = open(log, "ab")  # noqa: SIM115 - the child owns it
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
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


async def one(n: int, snapshot_every: int, shape: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="tierq-recovery-") as tmp:
        nats = EmbeddedNats(os.path.join(tmp, "nats"))
        await nats.astart()
        log = Path(tmp) / "master.log"
        first = spawn_master(nats.url, log, snapshot_every)
        app = tierq.App(nats=nats.url, request_timeout=30.0)
        try:
            await wait_serving(app, 30)
            master = await app.master()
            big = Settings(
                admission=AdmissionSettings(max_queued=2 * n, max_queued_per_queue=2 * n)
            )
            await master.put_settings(msgspec.msgpack.encode(big))
            spec = TaskSpec(name="bench.never", args=[1])
            start = time.perf_counter()
            for _ in range(n // 1000):
                await master.submit([spec] * 1000)
            submit_s = time.perf_counter() - start
            await asyncio.sleep(5.0 if shape == "snapshot" else 1.0)  # let a snapshot land
            rss = rss_mib(first.pid)
            first.send_signal(signal.SIGTERM)
            await asyncio.to_thread(first.wait)
            second = spawn_master(nats.url, log, snapshot_every)
            start = time.perf_counter()
            await wait_serving(app, 600)
            serve_s = time.perf_counter() - start
            rss2 = rss_mib(second.pid)
            second.send_signal(signal.SIGTERM)
            await asyncio.to_thread(second.wait)
        finally:
            await app.close()
            for proc in (first,):
                if proc.poll() is None:
                    proc.kill()
            await nats.astop()
        text = _master_log(log, shape)
        found = re.findall(
            r"rebuilt from the snapshot at (\d+) plus (\d+) events in ([\d.]+) s", text
        )
        snap, replayed, rebuild_s = found[-1] if found else ("?", "?", "?")
        return {
            "shape": shape,
            "n": n,
            "submit_s": submit_s,
            "rss_mib": rss,
            "rss_restarted_mib": rss2,
            "serve_s": serve_s,
            "rebuild_s": rebuild_s,
            "snapshot_seq": snap,
            "replayed": replayed,
        }


def _master_log(log: Path, shape: str) -> str:
    """The masters' log; kept in ``$TIERQ_BENCH_KEEP_LOGS`` when that is set."""
    text = log.read_text()
    keep = os.environ.get("TIERQ_BENCH_KEEP_LOGS")
    if keep:
        Path(keep, f"master-{shape}.log").write_text(text)
    return text


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| shape | tasks queued | restart → serving | of which rebuilding the state "
        "| snapshot at seq | events replayed | leader RSS before | RSS after restart |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['n']:,} | {r['serve_s']:.1f} s | {r['rebuild_s']} s "
            f"| {r['snapshot_seq']} "
            f"| {r['replayed']} | {r['rss_mib']:.0f} MiB | {r['rss_restarted_mib']:.0f} MiB |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--snapshot-every", type=int, default=200_000)
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = [
        asyncio.run(one(args.n, args.snapshot_every, "snapshot")),
        asyncio.run(one(args.n, 100_000_000, "log")),
    ]
    text = table(rows)
    print(text)
    if args.write is not None:
        when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        block = (
            f"{START}\nMeasured {when} on {machine()} with `python benchmarks/recovery.py "
            f"--n {args.n} --write docs/benchmarks.md`.\n\n{text}\n{END}"
        )
        write_section(args.write, START, END, block)
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
