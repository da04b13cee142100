"""The producer: measures one peer, inside that peer's virtualenv, and prints one JSON line.

Usage: ``driver.py PEER throughput N``, ``driver.py PEER bulk N SHAPE``,
``driver.py PEER latency M RATE`` or ``driver.py PEER sleep N SECONDS``.

Each ``bench_<peer>.py`` module offers the same small surface, sync or async as the peer is:
``submit()``, ``submit_sleep(seconds)``, ``submit_many(n)`` (a loop of ``submit``, for the
warm-up) and ``wait(handles)`` (block until every task has run; return each task's
``[start time, pid]`` in submission order), and optionally ``setup()`` and ``teardown()``.
``throughput`` calls ``submit()`` once per task, the same shape as every other system in the
table; ``sleep`` (W3) calls ``submit_sleep(seconds)`` once per task, a task that sleeps and then
reports like the no-op. ``bulk`` calls ``bulk_<SHAPE>(n)``, one of the peer's own bulk APIs
(``PeerSpec.bulk`` in specs.py lists them), and waits with ``wait_<SHAPE>`` when the shape's
handle is not a list of per-task handles.
The no-op task body is the same everywhere: ``return [time.time(), os.getpid()]``.
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


async def throughput(
    mod: ModuleType, n: int, shape: str | None = None, *args: Any, submit: str = "submit"
) -> dict[str, Any]:
    """``n`` tasks, one ``submit(*args)`` call each, or one ``bulk_<shape>(n)`` call."""
    t0 = time.perf_counter()
    if shape is not None:
        handles = await call(mod, f"bulk_{shape}", n)
    else:  # one call per task
        handles = [await call(mod, submit, *args) for _ in range(n)]
    t_enqueued = time.perf_counter()
    waiter = f"wait_{shape}" if shape is not None and hasattr(mod, f"wait_{shape}") else "wait"
    results = await call(mod, waiter, handles)
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
            out |= await throughput(mod, int(params[0]), params[1])
        elif mode == "sleep":
            out |= await throughput(
                mod, int(params[0]), None, float(params[1]), submit="submit_sleep"
            )
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
