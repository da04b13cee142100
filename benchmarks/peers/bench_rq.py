"""rq: one queue, SimpleWorker (no fork per job), results from rq's result streams."""

import os
import time

from redis import Redis
from rq import Queue
from rq.job import Job

URL = os.environ["BENCH_REDIS_URL"]
CHUNK = 1000  # enqueue_many pipelines a chunk at a time so workers start before the last chunk

queue = Queue("bench", connection=Redis.from_url(URL))


def noop() -> list[float]:
    return [time.time(), os.getpid()]


def nap(seconds: float) -> list[float]:
    time.sleep(seconds)  # an rq worker process runs one job at a time
    return [time.time(), os.getpid()]


def submit() -> Job:
    return queue.enqueue(noop)


def submit_sleep(seconds: float) -> Job:
    return queue.enqueue(nap, seconds)


def submit_many(n: int) -> list[Job]:
    return [queue.enqueue(noop) for _ in range(n)]


def bulk_enqueue_many(n: int) -> list[Job]:
    jobs: list[Job] = []
    for start in range(0, n, CHUNK):
        batch = [Queue.prepare_data(noop) for _ in range(min(CHUNK, n - start))]
        jobs += queue.enqueue_many(batch)
    return jobs


def wait(handles: list[Job]) -> list[list[float]]:
    out = []
    for job in handles:
        result = job.latest_result(timeout=600)
        assert result is not None and result.type == result.Type.SUCCESSFUL, result
        out.append(result.return_value)
    return out
