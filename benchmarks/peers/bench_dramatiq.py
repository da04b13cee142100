"""dramatiq: RedisBroker with the Results middleware on a RedisBackend."""

import os
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

URL = os.environ["BENCH_REDIS_URL"]

broker = RedisBroker(url=URL)
broker.add_middleware(Results(backend=RedisBackend(url=URL)))
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True)
def noop() -> list[float]:
    return [time.time(), os.getpid()]


def submit() -> dramatiq.Message:
    return noop.send()


def submit_many(n: int) -> list[dramatiq.Message]:
    # No bulk enqueue in dramatiq: group(...).run() also sends one message at a time.
    return [noop.send() for _ in range(n)]


def wait(handles: list[dramatiq.Message]) -> list[list[float]]:
    return [m.get_result(block=True, timeout=600_000) for m in handles]
