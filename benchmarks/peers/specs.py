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
    bulk: str | None = None
    """The peer's bulk enqueue API, measured in the batched table; None: it has none (its batch
    helpers send one message at a time)."""


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
            "prefork `-c 2`; `delay()` one by one (per-call table; `group`/`chunks` not run); "
            "Redis result backend, `ResultSet.join_native()`"
        ),
    ),
    PeerSpec(
        name="dramatiq",
        dist="dramatiq",
        requirements=("dramatiq[redis]==2.2.1", "redis==8.1.0", HIREDIS),
        worker_cmds=("dramatiq bench_dramatiq --processes 2 --threads 8",),
        config=(
            "`-p 2 -t 8`; `send()` one by one (per-call table; `group` not run); "
            "Results middleware on RedisBackend, `get_result(block=True)`"
        ),
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
        bulk="`enqueue_many()`, 1,000 jobs per call",
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
    ),
)
