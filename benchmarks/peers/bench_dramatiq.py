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


@dramatiq.actor(store_results=True)
def nap(seconds: float) -> list[float]:
    time.sleep(seconds)  # a sleeping task holds one of the worker's threads
    return [time.time(), os.getpid()]


def submit() -> dramatiq.Message:
    return noop.send()


def submit_sleep(seconds: float) -> dramatiq.Message:
    return nap.send(seconds)


def submit_many(n: int) -> list[dramatiq.Message]:
    return [noop.send() for _ in range(n)]


def bulk_group(n: int) -> dramatiq.group:
    """``group(...).run()``: one message per task (the broker enqueues them one by one)."""
    return dramatiq.group(noop.message() for _ in range(n)).run()


def wait_group(handle: dramatiq.group) -> list[list[float]]:
    return list(handle.get_results(block=True, timeout=600_000))


def wait(handles: list[dramatiq.Message]) -> list[list[float]]:
    return [m.get_result(block=True, timeout=600_000) for m in handles]
