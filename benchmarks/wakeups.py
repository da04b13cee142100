"""What a process wake-up costs: one request/reply between two processes, busy and idle.

    python benchmarks/wakeups.py [--calls 1000] [--gap-ms 5]

One nats-server, an echo responder in its own process (nats-py, uvloop) and this process
asking it, one call at a time: first back to back, then with a pause between calls, so every
process on the path is asleep when the call starts (as in W2, 200 submissions a second). A
round trip wakes four processes in turn (nats-server, the responder, nats-server, the caller),
so a quarter of the idle round trip is what one hop costs when its receiver sleeps. A task's
path from ``submit`` to a worker crosses eight such hops (docs/architecture.md, "Hops").
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nats  # noqa: E402
import uvloop  # noqa: E402

from tierq.engine import EmbeddedNats  # noqa: E402

RESPONDER = """
import asyncio, sys, nats, uvloop
async def main():
    nc = await nats.connect(sys.argv[1])
    async def echo(msg):
        await msg.respond(msg.data)
    await nc.subscribe("echo", cb=echo)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.Event().wait()
uvloop.run(main())
"""


async def timed_calls(nc: nats.NATS, calls: int, gap: float) -> list[float]:
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        await nc.request("echo", b"x" * 100, timeout=5)
        out.append(time.perf_counter() - t0)
        if gap:
            await asyncio.sleep(gap)
    return sorted(out)


def row(label: str, xs: list[float]) -> str:
    def at(q: float) -> float:
        return xs[min(len(xs) - 1, int(len(xs) * q))] * 1e3

    return f"| {label} | {statistics.median(xs) * 1e3:.3f} | {at(0.9):.3f} | {at(0.99):.3f} |"


async def main(calls: int, gap_ms: float) -> None:
    server = EmbeddedNats(tempfile.mkdtemp(prefix="tierq-wakeups-"))
    await server.astart()
    responder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RESPONDER, server.url, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert responder.stdout is not None
        await responder.stdout.readline()
        nc = await nats.connect(server.url)
        await timed_calls(nc, 200, 0.0)  # warm up
        busy = await timed_calls(nc, calls, 0.0)
        idle = await timed_calls(nc, calls, gap_ms / 1e3)
        await nc.close()
    finally:
        responder.kill()
        await responder.wait()
        server.stop()
    print(f"{calls} request/reply round trips of 100 bytes, one at a time\n")
    print("| calls | p50 ms | p90 ms | p99 ms |\n|---|---:|---:|---:|")
    print(row("back to back", busy))
    print(row(f"{gap_ms:g} ms apart (every process asleep)", idle))
    per_hop = statistics.median(idle) / 4 * 1e3
    print(f"\nFrom sleep, each of the four hops of a round trip takes {per_hop:.3f} ms (p50).")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--gap-ms", type=float, default=5.0)
    args = parser.parse_args()
    uvloop.run(main(args.calls, args.gap_ms))
