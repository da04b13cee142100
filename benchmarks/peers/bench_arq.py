"""arq: asyncio worker polling a Redis sorted set; results kept by arq."""

import asyncio
import os
import time
from typing import Any

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from arq.jobs import Job

SETTINGS = RedisSettings.from_dsn(os.environ["BENCH_REDIS_URL"])
_pool: ArqRedis | None = None


async def noop(ctx: dict[str, Any]) -> list[float]:
    return [time.time(), os.getpid()]


async def nap(ctx: dict[str, Any], seconds: float) -> list[float]:
    await asyncio.sleep(seconds)
    return [time.time(), os.getpid()]


class WorkerSettings:
    functions = [noop, nap]
    redis_settings = SETTINGS
    max_jobs = 100
    # The default 0.5 s sleep between queue polls would dominate both figures.
    poll_delay = 0.005


class SleepWorkerSettings:
    """W3: 8 jobs at a time per worker process (arq reads only the class's own attributes)."""

    functions = [noop, nap]
    redis_settings = SETTINGS
    max_jobs = 8
    poll_delay = 0.005


async def setup() -> None:
    global _pool
    _pool = await create_pool(SETTINGS)


async def teardown() -> None:
    if _pool is not None:
        await _pool.aclose()


async def submit() -> Job:
    assert _pool is not None
    job = await _pool.enqueue_job("noop")
    assert job is not None
    return job


async def submit_sleep(seconds: float) -> Job:
    assert _pool is not None
    job = await _pool.enqueue_job("nap", seconds)
    assert job is not None
    return job


async def submit_many(n: int) -> list[Job]:
    return [await submit() for _ in range(n)]


async def wait(handles: list[Job]) -> list[list[float]]:
    return [await job.result(timeout=600, poll_delay=0.001) for job in handles]
