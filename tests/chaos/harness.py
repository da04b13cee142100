"""The chaos stack: real processes on a real nats-server, a retrying producer, a ledger.

Every service is its own process started from the ``tierq`` CLI (two masters, one region,
workers), so faults are real signals: SIGKILL, SIGSTOP/SIGCONT, a black-holed TCP link. The
producer submits with idempotency keys and resends until a submission is acknowledged, the
way a careful client does; a reader checks, while faults happen, that no acknowledged task is
ever reported missing and that the succeeded count never goes back. At the end every
acknowledged key must have run (the ledger written by the tasks says so), every extra run
must be a counted attempt, and a master started cold from the log must show what the live
leader showed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import tierq
from tests.chaos.proxy import Proxy
from tierq.config import NatsConfig
from tierq.core.model import TaskState
from tierq.engine import Engine, LeaderLease, Subjects, connect
from tierq.engine.auth import NatsUsers
from tierq.engine.embedded import EmbeddedNats
from tierq.errors import InvalidRequestError, NotFoundError, TierqError
from tierq.protocol import QueryKind, QueryRequest, StatsReply, WorkersReply

TASKS = "tests.chaos.ctasks"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Report:
    """What one chaos run saw; ``problems`` must be empty."""

    scenario: str
    acknowledged: int = 0
    executions: int = 0
    duplicates: int = 0
    #: Acknowledged tasks that needed more than one attempt.
    retried: int = 0
    max_ack_gap: float = 0.0
    #: Seconds from the fault until another master answered (None: no failover expected).
    failover: float | None = None
    stale_reads: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.scenario}: acknowledged {self.acknowledged}, executions {self.executions}, "
            f"duplicates {self.duplicates}, retried {self.retried}, longest gap between "
            f"acknowledgements {self.max_ack_gap:.2f} s, failover {self.failover} s, "
            f"stale reads {len(self.stale_reads)}, problems {len(self.problems)}"
        )


class Stack:
    """nats-server, two masters (one behind a proxy), a region and workers, as processes."""

    def __init__(self, tmp: Path, *, seed: int = 1, sync_always: bool = False) -> None:
        self.tmp = tmp
        self.rng = random.Random(seed)
        # One NATS user per role with least-privilege permissions, as in production.
        users = NatsUsers.generate("tierq", regions=("default",))
        self.nats = EmbeddedNats(str(tmp / "nats"), sync_always=sync_always, users=users)
        self.ledger = tmp / "ledger.jsonl"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.proxy: Proxy | None = None
        self.app: tierq.App | None = None
        self.engine: Engine | None = None

    # -- processes -------------------------------------------------------------------------

    async def start_bus(self) -> None:
        """The nats-server, the harness's own connection, and the proxy for m1's link."""
        await self.nats.astart()
        # The harness reads the leader bucket as the master role does.
        self.engine = await connect(self.nats.connect_options("master", name="chaos"))
        self.proxy = await Proxy(self.nats.port).start()

    async def start(
        self, *, workers: int = 2, concurrency: int = 8, leader_env: dict[str, str] | None = None
    ) -> None:
        await self.start_bus()
        # m1 talks to NATS through the proxy, so its link can be black-holed or cut.
        self.spawn("m1", "master", "--holder", "m1", url=self.proxy.url, env=leader_env)
        await self.wait_leader("m1", timeout=20)
        self.spawn("m2", "master", "--holder", "m2")
        self.spawn("region", "region", "--name", "default")
        for i in range(workers):
            self.spawn_worker(f"w{i + 1}", concurrency)
        self.app = self.client(3.0)
        await self.wait_workers(workers)

    async def wait_workers(self, count: int, timeout: float = 30.0) -> None:
        """Wait until the master knows ``count`` live workers (faults start after that)."""
        assert self.app is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(TierqError):
                master = await self.app.master()
                reply = await master.query(QueryRequest(kind=QueryKind.WORKERS), WorkersReply)
                if len(reply.workers) >= count:
                    return
            await asyncio.sleep(0.1)
        raise AssertionError(f"fewer than {count} workers registered within {timeout} s")

    def client(self, request_timeout: float) -> tierq.App:
        """An SDK client logged in as the client role."""
        assert self.nats.credentials_file is not None
        config = NatsConfig(servers=(self.nats.url,), credentials=str(self.nats.credentials_file))
        return tierq.App(nats=config, request_timeout=request_timeout)

    @contextlib.asynccontextmanager
    async def engine_as(self, role: str) -> AsyncIterator[Engine]:
        """A connection logged in as ``role`` (region and worker roles: region ``default``)."""
        eng = await connect(self.nats.connect_options(role, "default", name=f"chaos-{role}"))
        try:
            yield eng
        finally:
            await eng.close()

    def spawn(
        self, name: str, *args: str, url: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        env = {**os.environ, **(env or {})}
        # Each process logs in as its role's user from the credentials file.
        env["TIERQ_NATS_CREDENTIALS"] = str(self.nats.credentials_file)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env["TIERQ_CHAOS_LEDGER"] = str(self.ledger)
        cmd = [sys.executable, "-m", "tierq", *args, "--nats", url or self.nats.url]
        out = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.procs[name] = proc
        return proc

    def spawn_worker(self, name: str, concurrency: int = 8) -> subprocess.Popen[bytes]:
        return self.spawn(name, "worker", TASKS, "--concurrency", str(concurrency))

    def signal(self, name: str, sig: signal.Signals) -> None:
        self.procs[name].send_signal(sig)

    async def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.kill()
        await asyncio.to_thread(proc.wait)

    async def stop_process(self, name: str, timeout: float = 10.0) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            try:
                await asyncio.wait_for(asyncio.to_thread(proc.wait), timeout)
            except TimeoutError:
                proc.kill()
                await asyncio.to_thread(proc.wait)

    async def close(self) -> None:
        if self.app is not None:
            with contextlib.suppress(Exception):
                await self.app.close()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
        await asyncio.gather(*(asyncio.to_thread(p.wait) for p in self.procs.values()))
        if self.proxy is not None:
            await self.proxy.close()
        if self.engine is not None:
            await self.engine.close()
        await self.nats.astop()

    async def leader(self) -> str | None:
        """Who holds the leader lease now (as the bucket says; None: nobody)."""
        assert self.engine is not None
        return await LeaderLease(self.engine, Subjects(), ttl=2.0).current_holder()

    async def wait_leader(self, name: str | None = None, *, timeout: float = 15.0) -> str:
        """Wait until some master (or ``name``) holds the lease and answers requests."""
        deadline = time.monotonic() + timeout
        probe = self.client(1.0)
        try:
            while time.monotonic() < deadline:
                holder = await self.leader()
                if holder is not None and name in (None, holder):
                    with contextlib.suppress(TierqError):
                        await (await probe.master()).query(
                            QueryRequest(kind=QueryKind.STATS), StatsReply
                        )
                        return holder
                await asyncio.sleep(0.1)
        finally:
            await probe.close()
        raise AssertionError(f"no leader {name or ''} within {timeout} s")


class Producer:
    """Submits ``total`` tasks at ``rate`` per second, resending each until acknowledged."""

    def __init__(self, app: tierq.App, total: int, rate: float, ms: float = 5.0) -> None:
        self.app = app
        self.total = total
        self.rate = rate
        self.ms = ms
        self.acked: dict[str, str] = {}
        self.ack_times: list[float] = []
        self.errors: dict[str, int] = defaultdict(int)
        self.refused: list[str] = []
        self._slots = asyncio.Semaphore(64)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        pending: set[asyncio.Task[None]] = set()
        for i in range(self.total):
            await asyncio.sleep(max(0.0, start + i / self.rate - loop.time()))
            await self._slots.acquire()
            task = asyncio.create_task(self._one(f"k{i}"))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)

    async def _one(self, key: str) -> None:
        try:
            while True:
                try:
                    handle = await self.app.submit("chaos.work", key, self.ms, idempotency_key=key)
                except InvalidRequestError as exc:
                    self.refused.append(f"{key}: {exc}")
                    return
                except TierqError as exc:  # timeouts, failover, backpressure: resend
                    self.errors[type(exc).__name__] += 1
                    await asyncio.sleep(0.1)
                    continue
                self.acked[key] = handle.id
                self.ack_times.append(time.monotonic())
                return
        finally:
            self._slots.release()

    def max_gap(self) -> float:
        times = sorted(self.ack_times)
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


class Reader:
    """Reads while faults happen: an acknowledged task reported missing is a stale read."""

    def __init__(self, app: tierq.App, producer: Producer) -> None:
        self.app = app
        self.producer = producer
        self.stale: list[str] = []
        self.regressions: list[str] = []
        self.reads = 0
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        rng = random.Random(7)
        best_succeeded = 0
        while not self._stop.is_set():
            acked = list(self.producer.acked.items())
            with contextlib.suppress(TierqError):
                if acked:
                    key, task_id = acked[rng.randrange(len(acked))]
                    try:
                        await self.app.get(task_id)
                    except NotFoundError as exc:
                        self.stale.append(f"{key} ({task_id}) acknowledged, then read as: {exc}")
                master = await self.app.master()
                stats = (await master.query(QueryRequest(kind=QueryKind.STATS), StatsReply)).stats
                if stats.totals.succeeded < best_succeeded:
                    self.regressions.append(
                        f"succeeded went back from {best_succeeded} to {stats.totals.succeeded}"
                    )
                best_succeeded = max(best_succeeded, stats.totals.succeeded)
                self.reads += 1
            await asyncio.sleep(0.02)


async def settle(app: tierq.App, ids: list[str], timeout: float) -> dict[str, tierq.Task]:
    """Every listed task once all are terminal (or as they are when ``timeout`` runs out)."""
    deadline = time.monotonic() + timeout
    tasks: dict[str, tierq.Task] = {}
    while True:
        for i in range(0, len(ids), 500):
            batch = ids[i : i + 500]
            try:
                found = await app.get_many(batch)
            except NotFoundError:  # one unknown id fails the batch: ask one by one
                found = []
                for task_id in batch:
                    with contextlib.suppress(NotFoundError):
                        found.append(await app.get(task_id))
            except TierqError:
                continue
            for task in found:
                tasks[task.id] = task
        done = all(t.state in _TERMINAL for t in tasks.values()) and len(tasks) == len(ids)
        if done or time.monotonic() > deadline:
            return tasks
        await asyncio.sleep(0.5)


_TERMINAL = frozenset({TaskState.SUCCEEDED, TaskState.DEAD, TaskState.CANCELLED, TaskState.SKIPPED})


def check(report: Report, producer: Producer, tasks: dict[str, tierq.Task], ledger: Path) -> None:
    """Acknowledged = executed at least once, nothing lost, every duplicate a counted attempt."""
    runs: dict[str, list[int]] = defaultdict(list)
    if ledger.exists():
        for line in ledger.read_text().splitlines():
            row = json.loads(line)
            runs[row["key"]].append(row["attempt"])
    report.acknowledged = len(producer.acked)
    report.executions = sum(len(v) for v in runs.values())
    report.duplicates = report.executions - len(runs)
    report.max_ack_gap = producer.max_gap()
    if producer.refused:
        report.problems.append(f"{len(producer.refused)} refused, e.g. {producer.refused[0]}")
    for key, task_id in producer.acked.items():
        task = tasks.get(task_id)
        if task is None:
            report.problems.append(f"lost: {key} ({task_id}) acknowledged, unknown now")
        elif task.state is not TaskState.SUCCEEDED:
            report.problems.append(f"{key} ({task_id}) ended {task.state.value}")
        elif key not in runs:
            report.problems.append(f"{key} ({task_id}) succeeded but never ran")
        else:
            attempts = runs[key]
            report.retried += task.attempt > 1
            if len(set(attempts)) != len(attempts):
                report.problems.append(f"{key}: uncounted re-run, attempts {attempts}")
            if max(attempts) > task.attempt:
                report.problems.append(f"{key}: ran as attempt {max(attempts)} > {task.attempt}")
    # Keys outside the producer's ``k<n>`` (a scenario's own probe tasks) are not its business.
    missing = {k for k in runs if k.startswith("k")} - set(producer.acked)
    # A key run but never acknowledged: the producer gave up on it (it never does) or lost it.
    if missing:
        report.problems.append(f"{len(missing)} keys ran without an acknowledgement")


async def cold_restart_equals_live(
    stack: Stack, tasks: dict[str, tierq.Task], report: Report
) -> None:
    """Stop every master, start a new one from the log alone, compare what it shows."""
    for name in [n for n in stack.procs if n.startswith("m")]:
        await stack.stop_process(name)
    stack.spawn("m3", "master", "--holder", "m3")
    await stack.wait_leader("m3", timeout=30)
    assert stack.app is not None
    after = await settle(stack.app, list(tasks), timeout=10)
    for task_id, live in tasks.items():
        cold = after.get(task_id)
        if cold is None or (cold.state, cold.attempt, cold.result) != (
            live.state,
            live.attempt,
            live.result,
        ):
            report.problems.append(f"replay differs for {task_id}: live {live}, cold {cold}")
            if len(report.problems) > 20:
                return
