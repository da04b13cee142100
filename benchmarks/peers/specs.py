"""What each peer installs, how its workers start and how it is configured.

Everything here is plain data read by the runner, which runs in tierq's own interpreter and never
imports a peer library. The peer side (app, task, enqueue and result calls) is in
``bench_<name>.py``, imported only inside that peer's own virtualenv.
"""

from __future__ import annotations

from dataclasses import dataclass

# Every peer gets the hiredis parser: redis-py picks it up when installed, and arq requires it.
HIREDIS = "hiredis==3.5.0"


@dataclass(frozen=True)
class PeerSpec:
    name: str
    dist: str
    """Distribution whose version is reported."""
    requirements: tuple[str, ...]
    worker_cmds: tuple[str, ...]
    """One command per worker supervisor, run from the venv's ``bin/``; ``{url}``: the Redis URL."""
    config: str
    """The configuration in one line, for the notes column; ``peers.md`` explains each choice."""
    sleep_worker_cmds: tuple[str, ...] = ()
    """W3's workers: 2 processes with 8 slots each, or what comes nearest (``sleep_slots``)."""
    sleep_slots: str = ""
    """What "2 processes x 8 slots" is for this peer, for W3's table."""
    bulk: tuple[tuple[str, str], ...] = ()
    """The peer's own bulk shapes, measured in the batched table: (``bulk_<shape>`` in
    ``bench_<name>.py``, label). Empty: it has no bulk enqueue API."""
    no_bulk: str = "no bulk enqueue API"
    """The batched table's note for the bulk shapes this peer has and that are not measured."""


PEERS: tuple[PeerSpec, ...] = (
    PeerSpec(
        name="celery",
        dist="celery",
        requirements=("celery[redis]==5.7.0", "redis==8.1.0", HIREDIS),
        worker_cmds=(
            "celery -A bench_celery worker --pool prefork --concurrency 2"
            " --without-gossip --without-mingle --without-heartbeat --loglevel WARNING",
        ),
        config=(
            "prefork `-c 2`; `delay()` one by one; Redis result backend, `ResultSet.join_native()`"
        ),
        sleep_worker_cmds=tuple(
            f"celery -A bench_celery worker --pool threads --concurrency 8 -n w3-{i}@%h"
            " --without-gossip --without-mingle --without-heartbeat --loglevel WARNING"
            for i in range(2)
        ),
        sleep_slots="2 workers x `--pool threads -c 8`: 8 threads per process",
        bulk=(
            ("group", "`group(...).apply_async()`: one message per task, published in one call"),
            (
                "chunks",
                "`noop.chunks(..., 100)`: 100 calls per message, run one after another in one "
                "worker process (another shape: one message per 100 tasks)",
            ),
        ),
    ),
    PeerSpec(
        name="dramatiq",
        dist="dramatiq",
        requirements=("dramatiq[redis]==2.2.1", "redis==8.1.0", HIREDIS),
        worker_cmds=("dramatiq bench_dramatiq --processes 2 --threads 8",),
        config=(
            "`-p 2 -t 8`; `send()` one by one; "
            "Results middleware on RedisBackend, `get_result(block=True)`"
        ),
        sleep_worker_cmds=("dramatiq bench_dramatiq --processes 2 --threads 8",),
        sleep_slots="`-p 2 -t 8`: 8 worker threads per process (as in W1)",
        bulk=(("group", "`group(...).run()`: one message per task, enqueued one by one"),),
    ),
    PeerSpec(
        name="rq",
        dist="rq",
        requirements=("rq==3.0.0", "redis==8.1.0", HIREDIS),
        worker_cmds=tuple(
            f"rq worker --url {{url}} --worker-class rq.worker.SimpleWorker"
            f" --logging_level WARNING --name bench-{i} bench"
            for i in range(2)
        ),
        config=("2 SimpleWorkers; rq result streams, `latest_result(timeout=)`"),
        # An rq worker runs one job at a time: 16 slots take 16 worker processes.
        sleep_worker_cmds=tuple(
            f"rq worker --url {{url}} --worker-class rq.worker.SimpleWorker"
            f" --logging_level WARNING --name bench-w3-{i} bench"
            for i in range(16)
        ),
        sleep_slots="16 SimpleWorker processes, 1 job each (an rq worker runs one job at a time)",
        bulk=(("enqueue_many", "`enqueue_many()`, 1,000 jobs per call"),),
    ),
    PeerSpec(
        name="huey",
        dist="huey",
        requirements=("huey==3.5.4", "redis==8.1.0", HIREDIS),
        worker_cmds=(
            "huey_consumer bench_huey.huey --workers 2 --worker-type process"
            " --logfile /dev/null --quiet",
        ),
        config=(
            "RedisHuey, `-w 2 -k process`; one call per task (no bulk API); "
            "huey result store, 1 ms polls"
        ),
        sleep_worker_cmds=(
            "huey_consumer bench_huey.huey --workers 8 --worker-type thread"
            " --logfile /dev/null --quiet",
        )
        * 2,
        sleep_slots="2 consumers x `-w 8 -k thread`: 8 threads per process",
        no_bulk="no bulk enqueue API (`task.map()` is a loop of single enqueues)",
    ),
    PeerSpec(
        name="arq",
        dist="arq",
        requirements=("arq==0.28.0", "redis[hiredis]==5.3.1", HIREDIS),
        worker_cmds=("arq bench_arq.WorkerSettings",) * 2,
        config=(
            "2 workers, `max_jobs=100`, `poll_delay=5 ms`; `enqueue_job()` one by one "
            "(no bulk API); `Job.result()`, 1 ms polls"
        ),
        sleep_worker_cmds=("arq bench_arq.SleepWorkerSettings",) * 2,
        sleep_slots="2 workers, `max_jobs=8`: 8 asyncio jobs per process",
    ),
    PeerSpec(
        name="taskiq",
        dist="taskiq",
        requirements=("taskiq==0.13.0", "taskiq-redis==1.2.4", "redis==8.1.0", HIREDIS),
        worker_cmds=("taskiq worker bench_taskiq:broker --workers 2 --log-level WARNING",),
        config=(
            "RedisStreamBroker, `--workers 2`; `kiq()` one by one (no bulk API); "
            "RedisAsyncResultBackend, 1 ms polls"
        ),
        sleep_worker_cmds=(
            "taskiq worker bench_taskiq:broker --workers 2 --max-async-tasks 8 --log-level WARNING",
        ),
        sleep_slots="`--workers 2 --max-async-tasks 8`: 8 asyncio tasks per process",
    ),
)
