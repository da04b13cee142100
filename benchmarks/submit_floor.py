"""The hops of an awaited submit, each timed alone: what one awaited call costs.

    python benchmarks/submit_floor.py [--seconds 4] [--passes 2]

One nats-server (file store, server defaults) and one ``tierq master`` process, no region and no
workers. One client, one call at a time, for ``--seconds`` each, ``--passes`` rounds in turn:

* a JetStream publish awaited for its ack (100 bytes, a stream of its own): the floor of any
  durable acknowledgement from this client library;
* a core NATS request to an echo responder in another nats-py connection: one request/reply
  through a Python process;
* ``MasterClient.submit`` of one task: request, the master's log append, reply;
* ``App.submit`` of one task through the durable intake (the SDK's default): one JetStream
  publish of the entry, durable on its ack (the master applies it afterwards).

Prints the median calls/s and ms per call of each (docs/architecture.md, "The awaited submit").
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nats  # noqa: E402
from nats.aio.msg import Msg  # noqa: E402

import tierq  # noqa: E402
from tierq.config import NatsConfig  # noqa: E402
from tierq.core.model import TaskSpec  # noqa: E402
from tierq.engine import EmbeddedNats, Subjects, connect  # noqa: E402
from tierq.rpc import MasterClient  # noqa: E402


async def rate(call: Callable[[], Awaitable[object]], seconds: float) -> float:
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < seconds:
        await call()
        n += 1
    return n / (time.perf_counter() - t0)


def spawn_master(url: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "tierq", "--log-level", "warning", "master", "--nats", url]
    return subprocess.Popen(cmd, env=env, cwd=ROOT)


def stop_master(master: subprocess.Popen[bytes]) -> None:
    master.send_signal(signal.SIGTERM)
    master.wait(timeout=10)


async def measure(seconds: float, passes: int) -> dict[str, list[float]]:
    server = EmbeddedNats(tempfile.mkdtemp(prefix="tierq-floor-"), sync_always=False)
    await server.astart()
    master = spawn_master(server.url)
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(name="FLOOR", subjects=["floor.>"])
        responder = await nats.connect(server.url)

        async def echo(msg: Msg) -> None:
            await msg.respond(b"ok")

        await responder.subscribe("floor-echo", cb=echo)
        engine = await connect(NatsConfig(servers=(server.url,)).connect_options(name="floor"))
        client = MasterClient(engine, Subjects(), timeout=30)
        spec = [TaskSpec(name="noop", args=[1])]
        deadline = time.monotonic() + 30
        while True:  # until the master leads
            try:
                await client.submit(spec)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        payload = b"x" * 100
        app = tierq.App(server.url, request_timeout=30)
        await app.submit("noop", 1)  # connects, hears the admission state
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "JetStream publish + ack": lambda: js.publish("floor.x", payload),
            "core request/reply, Python echo": lambda: nc.request("floor-echo", payload, 5),
            "submit of one task via the master": lambda: client.submit(spec),
            "`App.submit` of one task via the durable intake": lambda: app.submit("noop", 1),
        }
        out: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(passes):
            for name, call in calls.items():
                out[name].append(await rate(call, seconds))
        await app.close()
        await engine.close()
        await responder.close()
        await nc.close()
        return out
    finally:
        stop_master(master)
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    # No region runs "noop" here: the SDK's warning about it would be logged on every call.
    logging.getLogger("tierq.client").setLevel(logging.ERROR)
    results = asyncio.run(measure(args.seconds, args.passes))
    print("| what one awaited call does | calls/s | ms per call | passes |")
    print("|---|---:|---:|---|")
    for name, rates in results.items():
        med = statistics.median(rates)
        each = ", ".join(f"{r:,.0f}" for r in rates)
        print(f"| {name} | {med:,.0f} | {1000 / med:.2f} | {each} |")


if __name__ == "__main__":
    main()
