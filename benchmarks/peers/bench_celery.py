"""celery: Redis broker, Redis result backend."""

import os
import time

from celery import Celery, group
from celery.result import AsyncResult, GroupResult, ResultSet

URL = os.environ["BENCH_REDIS_URL"]
CHUNK = 100  # calls per message in the `chunks` shape

app = Celery("bench_celery", broker=URL, backend=URL)
app.conf.broker_connection_retry_on_startup = True


@app.task
def noop() -> list[float]:
    return [time.time(), os.getpid()]


@app.task
def nap(seconds: float) -> list[float]:
    time.sleep(seconds)  # W3 runs the threads pool: a sleeping task holds one thread
    return [time.time(), os.getpid()]


def submit() -> AsyncResult:
    return noop.delay()


def submit_sleep(seconds: float) -> AsyncResult:
    return nap.delay(seconds)


def submit_many(n: int) -> list[AsyncResult]:
    return [noop.delay() for _ in range(n)]


def bulk_group(n: int) -> GroupResult:
    """``group(...).apply_async()``: one message per task, published in one call."""
    return group(noop.s() for _ in range(n)).apply_async()


def bulk_chunks(n: int) -> GroupResult:
    """``chunks``: CHUNK calls per message, run one after another by one worker process."""
    return noop.chunks([()] * n, CHUNK).apply_async()


def wait_group(handle: GroupResult) -> list[list[float]]:
    return list(handle.join_native(timeout=600))


def wait_chunks(handle: GroupResult) -> list[list[float]]:
    return [r for chunk in handle.join_native(timeout=600) for r in chunk]


def wait(handles: list[AsyncResult]) -> list[list[float]]:
    return list(ResultSet(handles).join_native(timeout=600))
