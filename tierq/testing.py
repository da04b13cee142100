"""Public test kit: a real ``nats-server`` for your tests, no fakes.

::

    from tierq.testing import nats_server

    async def test_something():
        async with nats_server() as srv:
            engine = await connect(ConnectOptions(servers=[srv.url]))

``NatsCluster(3)`` starts three clustered servers instead (R3 streams; ``cluster.url`` lists
them all), whose nodes can be killed and restarted one by one.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgspec

from .config import MasterConfig, NatsConfig, RegionConfig, WorkerConfig
from .core.settings import Settings
from .engine import Engine, NatsUsers, connect
from .engine.cluster import NatsCluster
from .engine.embedded import DEFAULT_MAX_PAYLOAD, EmbeddedNats, free_port
from .master import Master
from .region import Region
from .worker.spawn import worker_env

__all__ = [
    "TEST_REGIONS",
    "EmbeddedNats",
    "LocalCluster",
    "NatsCluster",
    "free_port",
    "local_cluster",
    "nats_server",
]


#: Regions the test kit's server has region and worker users for, unless told otherwise.
TEST_REGIONS = ("default", "eu")


@asynccontextmanager
async def nats_server(
    *,
    durable: bool = False,
    sync_always: bool = False,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
    auth: bool = True,
    prefix: str = "tierq",
    regions: Sequence[str] = TEST_REGIONS,
) -> AsyncIterator[EmbeddedNats]:
    """A JetStream ``nats-server`` on a free loopback port, in a temporary directory.

    The server is stopped and its directory removed on exit; ``srv.kill()`` and
    ``srv.restart()`` are available inside for fault tests (the store survives restarts).

    Args:
        durable: the durable profile, which fsyncs every write before acking it
            (implies ``sync_always``).
        sync_always: ``sync_interval: always`` on the server.
        auth: one NATS user per role with least-privilege permissions, as in production
            (``srv.credentials_file`` holds them; ``srv.connect_options(role)`` logs in as
            one). False: anyone may do anything.
        prefix, regions: the installation the users are made for.
    """
    users = NatsUsers.generate(prefix, regions=regions) if auth else None
    with tempfile.TemporaryDirectory(prefix="tierq-test-nats-") as tmp:
        server = EmbeddedNats(
            tmp, sync_always=sync_always or durable, max_payload=max_payload, users=users
        )
        try:
            await server.astart()
            yield server
        finally:
            await server.astop()


class LocalCluster:
    """A master and one region in this process, workers in this process or as subprocesses.

    Meant for tests of code that uses tierq: everything runs for real over the given NATS
    server. Services can be stopped and started again (a "crash" of the in-process master or
    region is its task being cancelled: its soft state is gone, the log survives).
    """

    def __init__(
        self,
        nats_url: str,
        *,
        prefix: str = "tierq",
        region: str = "default",
        settings: Settings | None = None,
        worker_lease_seconds: float = 10.0,
        heartbeat_interval: float = 1.0,
        leader_lease_seconds: float = 2.0,
        snapshot_every: int = 200_000,
        credentials: str | os.PathLike[str] | None = None,
    ) -> None:
        self.nats_url = nats_url
        # Logins come from the environment like in every tierq process (TIERQ_NATS_USER,
        # TIERQ_NATS_CREDENTIALS...), or from ``credentials``; each service takes its role's.
        nats = NatsConfig.from_env(servers=nats_url, prefix=prefix)
        if credentials is not None:
            nats = msgspec.structs.replace(nats, credentials=os.fspath(credentials))
        self.nats = nats
        self.region_name = region
        self.settings = settings
        self.worker_lease_seconds = worker_lease_seconds
        self.heartbeat_interval = heartbeat_interval
        self.leader_lease_seconds = leader_lease_seconds
        self.snapshot_every = snapshot_every
        self.master: Master | None = None
        self.region: Region | None = None
        self._services: dict[str, tuple[asyncio.Task[None], Engine]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    async def start_master(self) -> Master:
        nats = self.nats.for_role("master")
        engine = await connect(nats.connect_options(name="tierq-test-master"))
        config = MasterConfig(
            nats=nats,
            initial_settings=self.settings,
            leader_lease_seconds=self.leader_lease_seconds,
            snapshot_every=self.snapshot_every,
        )
        master = Master(config, engine)
        task = asyncio.create_task(master.run())
        await _ready(master.ready, task)
        self.master = master
        self._services["master"] = (task, engine)
        return master

    async def stop_master(self, *, crash: bool = False) -> None:
        """Stop the master; ``crash`` cancels it without releasing its lease or flushing."""
        task, engine = self._services.pop("master")
        if crash:
            if self.master is not None:
                self.master.release_on_exit = False
            task.cancel()
        elif self.master is not None:
            self.master.stop()
        self.master = None
        try:
            await _stopped(task)
        finally:
            await engine.close()

    async def start_region(self) -> Region:
        nats = self.nats.for_role("region", self.region_name)
        engine = await connect(nats.connect_options(name="tierq-test-region"))
        config = RegionConfig(
            nats=nats,
            name=self.region_name,
            worker_lease_seconds=self.worker_lease_seconds,
            heartbeat_interval=self.heartbeat_interval,
        )
        region = Region(config, engine)
        task = asyncio.create_task(region.run())
        await _ready(region.ready, task)
        self.region = region
        self._services["region"] = (task, engine)
        return region

    async def stop_region(self) -> None:
        task, engine = self._services.pop("region")
        task.cancel()
        self.region = None
        try:
            await _stopped(task)
        finally:
            await engine.close()

    async def start_worker(
        self, *modules: str, concurrency: int = 4, pool: str = "async"
    ) -> asyncio.Task[None]:
        """Run a worker in this process (stopped by :meth:`close`)."""
        from .worker import run_worker

        config = WorkerConfig(
            nats=self.nats.for_role("worker", self.region_name),
            modules=modules,
            region=self.region_name,
            concurrency=concurrency,
            pool=pool,
            drain_grace=1.0,
        )
        task = asyncio.create_task(run_worker(config, handle_signals=False))
        self._workers.append(task)
        return task

    def spawn_worker(
        self,
        *modules: str,
        concurrency: int = 4,
        pool: str = "async",
        extra_env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``tierq worker`` as a real process (stopped by :meth:`close`)."""
        env = worker_env(self.nats)
        env.update(extra_env or {})
        cmd = [
            sys.executable,
            "-m",
            "tierq",
            "worker",
            *modules,
            "--nats",
            self.nats_url,
            "--prefix",
            self.nats.prefix,
            "--region",
            self.region_name,
            "--concurrency",
            str(concurrency),
            "--pool",
            pool,
        ]
        proc = subprocess.Popen(cmd, env=env)
        self.processes.append(proc)
        return proc

    async def close(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
        await asyncio.gather(*(asyncio.to_thread(p.wait) for p in self.processes))
        for task in self._workers:
            task.cancel()
        if self._workers:
            _, stuck = await asyncio.wait(self._workers, timeout=10)
            if stuck:
                raise RuntimeError(f"{len(stuck)} in-process worker(s) ignored cancellation")
        # Stop both even if one of them crashed, then raise what the first one ended with.
        failures: list[Exception] = []
        for name, stop in (("region", self.stop_region), ("master", self.stop_master)):
            if name in self._services:
                try:
                    await stop()
                except Exception as exc:
                    failures.append(exc)
        if failures:
            raise failures[0]


@asynccontextmanager
async def local_cluster(nats_url: str, **options: Any) -> AsyncIterator[LocalCluster]:
    """Start a master and a region against ``nats_url``; stop everything on exit."""
    cluster = LocalCluster(nats_url, **options)
    try:
        await cluster.start_master()
        await cluster.start_region()
        yield cluster
    finally:
        await cluster.close()


async def _stopped(task: asyncio.Task[None]) -> None:
    """Wait for a service being stopped. Its cancellation is the stop; anything else it ended
    with (a crash while it ran, or while it stopped) is raised here, at teardown."""
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the caller itself is being cancelled, not only the service


async def _ready(ready: asyncio.Event, task: asyncio.Task[None]) -> None:
    waiter = asyncio.ensure_future(ready.wait())
    done, _ = await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()
        raise RuntimeError("service stopped during start-up")
