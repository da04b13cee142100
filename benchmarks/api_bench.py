"""Submit throughput through the API: REST and gRPC, one task per call and batches.

Every part is its own process, as deployed: one nats-server (the embedded one, server
defaults), one master, one region, one API process (REST under uvicorn and gRPC, open mode on
loopback, no rate limit) and this process as the load generator. No workers run: this
measures admission (API -> master -> durable log -> reply), not execution; the tasks stay
queued. The same submissions straight to the master over NATS (``MasterClient``, what the
Python SDK does) are the baseline that shows what the API hop costs.

The REST load comes from a minimal keep-alive HTTP/1.1 client (pre-encoded requests, one
connection per caller): httpx spends about 2 ms of CPU per request here, more than the server
does, and on two cores that would measure httpx. gRPC load uses ``grpc.aio`` stubs.

    python benchmarks/api_bench.py [--single 4000] [--batch-tasks 40000] [--batch 500]
                                   [--concurrency 32] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import grpc.aio  # noqa: E402
import httpx  # noqa: E402

from tierq.api.proto import tierq_pb2 as pb  # noqa: E402
from tierq.api.proto import tierq_pb2_grpc  # noqa: E402
from tierq.api.proto import types_pb2 as types  # noqa: E402
from tierq.config import NatsConfig  # noqa: E402
from tierq.core.model import TaskSpec  # noqa: E402
from tierq.engine import EmbeddedNats, Subjects, connect, free_port  # noqa: E402
from tierq.rpc import MasterClient  # noqa: E402

SERVICE = """
import asyncio, sys
try:
    import uvloop
    uvloop.install()
except ImportError:
    pass
from tierq.config import MasterConfig, NatsConfig, RegionConfig
nats = NatsConfig(servers=(sys.argv[2],))
kind = sys.argv[1]
if kind == "master":
    from tierq.master import run_master
    asyncio.run(run_master(MasterConfig(nats=nats)))
elif kind == "region":
    from tierq.region import run_region
    asyncio.run(run_region(RegionConfig(nats=nats)))
else:
    from tierq.api import ApiConfig, run_api
    config = ApiConfig(nats=nats, port=int(sys.argv[3]), grpc_port=int(sys.argv[4]),
                       rate_limit=0.0, max_body_bytes=4 << 20)
    asyncio.run(run_api(config))
"""

#: One small task, as every client would send it.
TASK = {"name": "noop", "args": [1, "two", 3.0], "priority": 5}


@dataclass
class Result:
    transport: str
    mode: str
    tasks: int
    calls: int
    seconds: float
    #: Latency of one call (one task, or one batch), milliseconds.
    p50_ms: float
    p99_ms: float
    #: CPU the load generator spent per call, milliseconds (it shares the machine).
    client_cpu_ms: float

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds


class Stack:
    """nats-server, master, region and API, each in its own process."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="tierq-api-bench-")
        self.nats = EmbeddedNats(self.dir)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.http_port = free_port()
        self.grpc_port = free_port()

    def _spawn(self, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.procs.append(
            subprocess.Popen([sys.executable, "-c", SERVICE, *args], env=env, cwd=ROOT)
        )

    async def start(self) -> None:
        await self.nats.astart()
        self._spawn("master", self.nats.url)
        self._spawn("region", self.nats.url)
        self._spawn("api", self.nats.url, str(self.http_port), str(self.grpc_port))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.nats.stop()


class RawHttp:
    """One keep-alive HTTP/1.1 connection that sends ready-made requests, nothing more."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> RawHttp:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def call(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        at = head.lower().find(b"content-length:")
        length = int(head[at + 15 : head.index(b"\r\n", at)])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def post(path: str, body: object) -> bytes:
    data = json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data


async def _warm_up(http: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            r = await http.post("/v1/tasks", json=TASK)
            if r.status_code == 201:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the API did not come up")
        await asyncio.sleep(0.2)


async def drive(
    transport: str,
    mode: str,
    calls: int,
    per_call: int,
    concurrency: int,
    call: Callable[[int], Awaitable[int]],
) -> Result:
    """``concurrency`` callers share ``calls`` calls; each call returns the tasks it accepted.

    ``call`` gets the caller's index (REST callers each own a connection).
    """
    latencies: list[float] = []
    remaining = calls
    accepted = 0

    async def caller(index: int) -> None:
        nonlocal remaining, accepted
        while remaining > 0:
            remaining -= 1
            t = time.perf_counter()
            n = await call(index)  # not `accepted += await ...`: that reads `accepted` first
            latencies.append((time.perf_counter() - t) * 1000)
            accepted += n

    t0 = time.perf_counter()
    cpu = time.process_time()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu
    assert accepted == calls * per_call, (accepted, calls * per_call)
    latencies.sort()
    return Result(
        transport=transport,
        mode=mode,
        tasks=accepted,
        calls=calls,
        seconds=seconds,
        p50_ms=statistics.median(latencies),
        p99_ms=latencies[max(0, int(len(latencies) * 0.99) - 1)],
        client_cpu_ms=cpu * 1000 / calls,
    )


async def measure(args: argparse.Namespace) -> list[Result]:
    stack = Stack()
    await stack.start()
    try:
        base = f"http://127.0.0.1:{stack.http_port}"
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=64)
        async with (
            httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http,
            grpc.aio.insecure_channel(f"127.0.0.1:{stack.grpc_port}") as channel,
        ):
            await _warm_up(http)
            stub = tierq_pb2_grpc.TierqStub(channel)
            spec = types.TaskSpec(
                name="noop", args_json=json.dumps(TASK["args"]), priority=TASK["priority"]
            )
            batch_body = {"tasks": [TASK] * args.batch}
            batch_pb = pb.SubmitTasksRequest(tasks=[spec] * args.batch)
            engine = await connect(
                NatsConfig(servers=(stack.nats.url,)).connect_options(name="bench-sdk")
            )
            master = MasterClient(engine, Subjects(), timeout=60)
            core_spec = TaskSpec(name="noop", args=list(TASK["args"]), priority=5)  # type: ignore[arg-type]

            conns = [
                await RawHttp.open(stack.http_port)
                for _ in range(max(args.concurrency, args.batch_concurrency))
            ]
            one_request = post("/v1/tasks", TASK)
            batch_request = post("/v1/tasks:batch", batch_body)

            async def rest_one(i: int) -> int:
                status, body = await conns[i].call(one_request)
                assert status == 201, body
                return 1

            async def rest_batch(i: int) -> int:
                status, body = await conns[i].call(batch_request)
                assert status == 201, body
                return len(json.loads(body)["ids"])

            async def grpc_one(i: int) -> int:
                await stub.SubmitTask(pb.SubmitTaskRequest(task=spec), timeout=60)
                return 1

            async def grpc_batch(i: int) -> int:
                return len((await stub.SubmitTasks(batch_pb, timeout=60)).ids)

            async def sdk_one(i: int) -> int:
                return len(await master.submit([core_spec]))

            async def sdk_batch(i: int) -> int:
                return len(await master.submit([core_spec] * args.batch))

            batches = max(1, args.batch_tasks // args.batch)
            c, cb = args.concurrency, args.batch_concurrency
            plan = [
                ("REST", "single", args.single, 1, c, rest_one),
                ("gRPC", "single", args.single, 1, c, grpc_one),
                ("NATS (SDK)", "single", args.single, 1, c, sdk_one),
                ("REST", f"batch {args.batch}", batches, args.batch, cb, rest_batch),
                ("gRPC", f"batch {args.batch}", batches, args.batch, cb, grpc_batch),
                ("NATS (SDK)", f"batch {args.batch}", batches, args.batch, cb, sdk_batch),
            ]
            results = []
            for transport, mode, calls, per_call, conc, fn in plan:
                results.append(await drive(transport, mode, calls, per_call, conc, fn))
            for conn in conns:
                conn.close()
            await engine.close()
            return results
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--single", type=int, default=4000, help="calls per single-task run")
    parser.add_argument("--batch-tasks", type=int, default=40_000, help="tasks per batch run")
    parser.add_argument("--batch", type=int, default=500, help="tasks per batch call")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight (single)")
    parser.add_argument("--batch-concurrency", type=int, default=4, help="calls in flight (batch)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    runs = [asyncio.run(measure(args)) for _ in range(args.runs)]
    medians: list[Result] = []
    print(
        f"{'transport':<11} {'mode':<10} {'tasks/s':>9} {'min':>8} {'max':>8} "
        f"{'call p50':>9} {'call p99':>9} {'client cpu/call':>16}",
        flush=True,
    )
    for i in range(len(runs[0])):
        series = sorted((run[i] for run in runs), key=lambda r: r.rate)
        median = series[len(series) // 2]
        medians.append(median)
        print(
            f"{median.transport:<11} {median.mode:<10} {median.rate:>9,.0f} "
            f"{series[0].rate:>8,.0f} {series[-1].rate:>8,.0f} "
            f"{median.p50_ms:>7.2f}ms {median.p99_ms:>7.2f}ms {median.client_cpu_ms:>14.3f}ms",
            flush=True,
        )
    return medians


if __name__ == "__main__":
    main()
