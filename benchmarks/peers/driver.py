"""The producer: measures one peer, inside that peer's virtualenv, and prints one JSON line.

Usage: ``driver.py PEER throughput N``, ``driver.py PEER bulk N`` or
``driver.py PEER latency M RATE``.

Each ``bench_<peer>.py`` module offers the same small surface, sync or async as the peer is:
``submit()``, ``submit_many(n)`` and ``wait(handles)`` (block until every task has run; return each
task's ``[start time, pid]`` in submission order), and optionally ``setup()`` and ``teardown()``.
``throughput`` calls ``submit()`` once per task, the same shape as every other system in the
table; ``bulk`` calls ``submit_many(n)``, the peer's own bulk API where it has one
(``PeerSpec.bulk`` in specs.py names it; for the others ``submit_many`` is the same loop).
The task body is the same everywhere: ``return [time.time(), os.getpid()]``.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import inspect
import json
import math
import sys
import time
from types import ModuleType
from typing import Any

WARMUP_BATCH = 50
WARMUP_TIMEOUT = 60.0
WORKER_PROCESSES = 2


async def call(mod: ModuleType, name: str, *args: Any) -> Any:
    fn = getattr(mod, name, None)
    if fn is None:
        return None
    out = fn(*args)
    return await out if inspect.isawaitable(out) else out


async def warm_up(mod: ModuleType) -> int:
    """Run batches until tasks have run in every worker process (or time runs out)."""
    pids: set[float] = set()
    deadline = time.monotonic() + WARMUP_TIMEOUT
    while len(pids) < WORKER_PROCESSES and time.monotonic() < deadline:
        results = await call(mod, "wait", await call(mod, "submit_many", WARMUP_BATCH))
        pids.update(r[1] for r in results)
    return len(pids)


async def throughput(mod: ModuleType, n: int, bulk: bool = False) -> dict[str, Any]:
    t0 = time.perf_counter()
    if bulk:
        handles = await call(mod, "submit_many", n)
    else:  # one call per task
        handles = [await call(mod, "submit") for _ in range(n)]
    t_enqueued = time.perf_counter()
    results = await call(mod, "wait", handles)
    t1 = time.perf_counter()
    assert len(results) == n
    return {
        "tasks_per_s": n / (t1 - t0),
        "elapsed_s": t1 - t0,
        "enqueue_s": t_enqueued - t0,
        "processes": len({r[1] for r in results}),
    }


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


async def latency(mod: ModuleType, m: int, rate: float) -> dict[str, Any]:
    submitted: list[float] = []
    calls: list[float] = []
    handles = []
    t0 = time.time() + 0.05
    for i in range(m):
        delay = t0 + i / rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        submitted.append(time.time())
        c0 = time.perf_counter()
        handles.append(await call(mod, "submit"))
        calls.append((time.perf_counter() - c0) * 1000)
    t_last = time.time()
    results = await call(mod, "wait", handles)
    lat_ms = sorted((r[0] - s) * 1000 for r, s in zip(results, submitted, strict=True))
    calls.sort()
    return {
        "call_p50_ms": percentile(calls, 0.50),
        "call_p99_ms": percentile(calls, 0.99),
        "p50_ms": percentile(lat_ms, 0.50),
        "p99_ms": percentile(lat_ms, 0.99),
        "max_ms": lat_ms[-1],
        "achieved_rate": (m - 1) / (t_last - t0) if m > 1 else rate,
    }


async def main(argv: list[str]) -> dict[str, Any]:
    peer, mode, *params = argv
    mod = importlib.import_module(f"bench_{peer}")
    await call(mod, "setup")
    try:
        out: dict[str, Any] = {"warmup_processes": await warm_up(mod)}
        if mode == "throughput":
            out |= await throughput(mod, int(params[0]))
        elif mode == "bulk":
            out |= await throughput(mod, int(params[0]), bulk=True)
        elif mode == "latency":
            out |= await latency(mod, int(params[0]), float(params[1]))
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    finally:
        await call(mod, "teardown")
    out["version"] = importlib.metadata.version(peer)
    out["redis_py"] = importlib.metadata.version("redis")
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1:]))), flush=True)
