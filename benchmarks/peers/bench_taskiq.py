"""taskiq: taskiq-redis RedisStreamBroker (acknowledged) with RedisAsyncResultBackend."""

import asyncio
import os
import time
from typing import Any

from taskiq import AsyncTaskiqTask
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

URL = os.environ["BENCH_REDIS_URL"]

broker = RedisStreamBroker(URL).with_result_backend(RedisAsyncResultBackend(URL))


@broker.task
async def noop() -> list[float]:
    return [time.time(), os.getpid()]


@broker.task
async def nap(seconds: float) -> list[float]:
    await asyncio.sleep(seconds)
    return [time.time(), os.getpid()]


async def setup() -> None:
    await broker.startup()


async def teardown() -> None:
    await broker.shutdown()


async def submit() -> AsyncTaskiqTask[Any]:
    return await noop.kiq()


async def submit_sleep(seconds: float) -> AsyncTaskiqTask[Any]:
    return await nap.kiq(seconds)


async def submit_many(n: int) -> list[AsyncTaskiqTask[Any]]:
    return [await noop.kiq() for _ in range(n)]


async def wait(handles: list[AsyncTaskiqTask[Any]]) -> list[list[float]]:
    out = []
    for task in handles:
        result = await task.wait_result(check_interval=0.001, timeout=600)
        assert not result.is_err, result.error
        out.append(result.return_value)
    return out
