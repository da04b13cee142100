"""celery: Redis broker, Redis result backend."""

import os
import time

from celery import Celery
from celery.result import AsyncResult, ResultSet

URL = os.environ["BENCH_REDIS_URL"]

app = Celery("bench_celery", broker=URL, backend=URL)
app.conf.broker_connection_retry_on_startup = True


@app.task
def noop() -> list[float]:
    return [time.time(), os.getpid()]


def submit() -> AsyncResult:
    return noop.delay()


def submit_many(n: int) -> list[AsyncResult]:
    # Celery has no bulk enqueue: group(...).apply_async() also publishes one message at a time.
    return [noop.delay() for _ in range(n)]


def wait(handles: list[AsyncResult]) -> list[list[float]]:
    return list(ResultSet(handles).join_native(timeout=600))
