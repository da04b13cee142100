"""NATS client libraries side by side: what one awaited call costs from Python.

    python benchmarks/clients.py [--seconds 3] [--passes 3]

An awaited submit through the durable intake is one JetStream publish awaited for its ack, so
the client library's per-call overhead sets its floor. One nats-server (file store, server
defaults), one client at a time, one call at a time, the clients taking turns in each pass:

* JetStream publish of 100 bytes, awaited for its ack;
* core request/reply of 100 bytes to an echo responder (the responder uses nats-py in every
  case, in its own connection).

Clients: nats-py (tierq's dependency) and, when installed, natsrpy (a Rust-backed client,
``pip install natsrpy``). The ``nats-jetstream`` package on PyPI needs ``nats-core``'s
``nats.client``, and ``nats-core`` there is a 0.0.0 placeholder without it, so it cannot run.
Prints medians and each pass.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nats  # noqa: E402
from nats.aio.msg import Msg  # noqa: E402

from tierq.engine import EmbeddedNats  # noqa: E402

Call = Callable[[], Awaitable[object]]
PAYLOAD = b"x" * 100


async def rate(call: Call, seconds: float) -> float:
    for _ in range(50):  # warm up
        await call()
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < seconds:
        await call()
        n += 1
    return n / (time.perf_counter() - t0)


async def nats_py(url: str) -> tuple[dict[str, Call], Callable[[], Awaitable[None]]]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    calls: dict[str, Call] = {
        "JetStream publish + ack": lambda: js.publish("bench.js", PAYLOAD),
        "request/reply (echo)": lambda: nc.request("bench.echo", PAYLOAD, timeout=5),
    }
    return calls, nc.close


async def natsrpy_client(url: str) -> tuple[dict[str, Call], Callable[[], Awaitable[None]]] | None:
    try:
        from natsrpy import Nats  # type: ignore[import-not-found]
    except ImportError:
        return None
    nc: Any = Nats(addrs=[url])
    await nc.startup()
    js = await nc.jetstream()
    calls: dict[str, Call] = {
        "JetStream publish + ack": lambda: js.publish("bench.js", PAYLOAD, wait=True),
        "request/reply (echo)": lambda: nc.request("bench.echo", PAYLOAD),
    }
    return calls, nc.shutdown


async def measure(seconds: float, passes: int) -> dict[tuple[str, str], list[float]]:
    server = EmbeddedNats(tempfile.mkdtemp(prefix="tierq-clients-"), sync_always=False)
    await server.astart()
    out: dict[tuple[str, str], list[float]] = {}
    closers: list[Callable[[], Awaitable[None]]] = []
    try:
        admin = await nats.connect(server.url)
        closers.append(admin.close)
        await admin.jetstream().add_stream(name="BENCH", subjects=["bench.js"])

        async def echo(msg: Msg) -> None:
            await msg.respond(msg.data)

        await admin.subscribe("bench.echo", cb=echo)
        clients: dict[str, dict[str, Call]] = {}
        for name, make in (("nats-py", nats_py), ("natsrpy", natsrpy_client)):
            made = await make(server.url)
            if made is None:
                print(f"{name}: not installed, skipped", flush=True)
                continue
            clients[name], close = made
            closers.append(close)
        for _ in range(passes):
            for name, calls in clients.items():
                for what, call in calls.items():
                    out.setdefault((name, what), []).append(await rate(call, seconds))
        return out
    finally:
        for close in reversed(closers):
            await close()
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args(argv)
    results = asyncio.run(measure(args.seconds, args.passes))
    print("| client | awaited call | calls/s (median) | ms per call | passes |")
    print("|---|---|---:|---:|---|")
    for (name, what), rates in results.items():
        med = statistics.median(rates)
        each = ", ".join(f"{r:,.0f}" for r in rates)
        print(f"| {name} | {what} | {med:,.0f} | {1000 / med:.3f} | {each} |")


if __name__ == "__main__":
    main()
