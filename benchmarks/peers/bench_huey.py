"""huey: RedisHuey (blocking dequeue), results from huey's Redis result store."""

import os
import time

from huey import RedisHuey
from huey.api import Result

URL = os.environ["BENCH_REDIS_URL"]

huey = RedisHuey("bench", url=URL)


@huey.task()
def noop() -> list[float]:
    return [time.time(), os.getpid()]


@huey.task()
def nap(seconds: float) -> list[float]:
    time.sleep(seconds)  # W3 runs thread workers: a sleeping task holds one thread
    return [time.time(), os.getpid()]


def submit() -> Result:
    return noop()


def submit_sleep(seconds: float) -> Result:
    return nap(seconds)


def submit_many(n: int) -> list[Result]:
    # noop.map() exists but is the same loop of single enqueues.
    return [noop() for _ in range(n)]


def wait(handles: list[Result]) -> list[list[float]]:
    # Poll every 1 ms (the default backs off from 50 ms to 1 s), as for arq and taskiq.
    return [r.get(blocking=True, timeout=600, backoff=1.0, max_delay=0.001) for r in handles]
