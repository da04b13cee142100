"""``tierq dev``: the whole system on one laptop with one command.

Starts (in this order) an embedded nats-server unless ``--nats`` points at one, the master and
one region in this process, the API and dashboard when they are installed, and N worker
processes. Stops them in reverse order on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from .autoscale import AutoscaleConfig, Autoscaler
from .config import MasterConfig, NatsConfig, RegionConfig
from .devcheck import check_modules, check_ports, data_dir_lock
from .engine import EmbeddedNats, NatsUsers, connect
from .errors import InvalidRequestError
from .master.service import Master
from .region.service import Region
from .worker.spawn import worker_command, worker_env

log = logging.getLogger("tierq.dev")


#: The port clients try when nothing else is configured (NATS's standard port).
DEFAULT_NATS_PORT = 4222


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass(slots=True)
class DevOptions:
    #: How to reach and log into the NATS at ``nats_url`` (flags and env); None: only the URL.
    nats: NatsConfig | None = None
    modules: list[str] = field(default_factory=list)
    workers: int = 2
    concurrency: int = 8
    pool: str = "async"
    demo: bool = False
    nats_url: str | None = None
    data_dir: str | None = None
    nats_port: int | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    grpc_port: int = 50051
    no_api: bool = False
    sync_always: bool = False
    prefix: str = "tierq"
    region: str = "default"
    worker_lease_seconds: float = 10.0
    region_lease_seconds: float | None = None
    #: Run an autoscaler (local provider) instead of a fixed number of workers.
    autoscale: bool = False
    announce: Callable[[str], None] = print


@dataclass(slots=True)
class DevStack:
    """Handles on a running dev system (for the demo and for tests)."""

    nats_url: str
    nats: NatsConfig
    master: Master
    region: Region
    workers: list[subprocess.Popen[bytes]]
    api_url: str | None = None
    autoscaler: Autoscaler | None = None


def _worker_command(opts: DevOptions, nats_url: str, modules: list[str]) -> list[str]:
    return worker_command(
        modules,
        nats_url=nats_url,
        prefix=opts.prefix,
        region=opts.region,
        concurrency=opts.concurrency,
        pool=opts.pool,
    )


def start_workers(
    opts: DevOptions, nats: NatsConfig, nats_url: str, modules: list[str]
) -> list[subprocess.Popen[bytes]]:
    env = worker_env(nats)
    return [
        subprocess.Popen(_worker_command(opts, nats_url, modules), env=env)
        for _ in range(opts.workers)
    ]


async def stop_processes(procs: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    """SIGTERM (workers drain), then SIGKILL what is still alive after ``timeout``.

    Waits without blocking the loop: the master and region in this process must keep
    answering while the workers finish and report.
    """
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    await asyncio.gather(*(reap(proc, timeout) for proc in procs))


async def reap(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for ``proc`` in a thread (the loop keeps running); SIGKILL it after ``timeout``."""
    try:
        await asyncio.to_thread(proc.wait, timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        await asyncio.to_thread(proc.wait)


@contextlib.asynccontextmanager
async def dev_stack(opts: DevOptions) -> AsyncIterator[DevStack]:
    """Start everything ``tierq dev`` runs; stop it all on exit."""
    modules = list(opts.modules)
    if opts.demo and "tierq.demo" not in modules:
        modules.append("tierq.demo")
    if not modules:
        raise ValueError("tierq dev needs at least one task module (or --demo)")
    # Refuse before anything starts: a missing module, a port in use, a data dir in use.
    check_modules(modules)
    check_ports(opts.api_host, _ports(opts))
    held = contextlib.ExitStack()
    embedded: EmbeddedNats | None = None
    if opts.nats_url is None:
        held.enter_context(data_dir_lock(Path(opts.data_dir or ".tierq")))
        try:
            embedded, nats = await _start_embedded(opts)
        except BaseException:
            held.close()
            raise
        nats_url = embedded.url
    else:
        nats_url = opts.nats_url
        base = opts.nats or NatsConfig(prefix=opts.prefix)
        nats = msgspec.structs.replace(base, servers=(nats_url,), prefix=opts.prefix)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            master_nats = nats.for_role("master")
            master_engine = await connect(master_nats.connect_options(name="tierq-master"))
            stack.push_async_callback(master_engine.close)
            master = Master(MasterConfig(nats=master_nats), master_engine)
            region_nats = nats.for_role("region", opts.region)
            region_engine = await connect(region_nats.connect_options(name="tierq-region"))
            stack.push_async_callback(region_engine.close)
            region = Region(
                RegionConfig(
                    nats=region_nats,
                    name=opts.region,
                    worker_lease_seconds=opts.worker_lease_seconds,
                ),
                region_engine,
            )
            async with asyncio.TaskGroup() as tg:
                master_task = tg.create_task(master.run())
                await _wait_ready(master.ready, master_task)
                opts.announce(f"master       leader, prefix {opts.prefix!r}")
                region_task = tg.create_task(region.run())
                await _wait_ready(region.ready, region_task)
                opts.announce(f"region       {opts.region!r}")
                api_url, api_task = await _start_api(opts, nats, tg)
                scaler: Autoscaler | None = None
                if opts.autoscale:
                    scaler, scaler_task = await _start_autoscaler(opts, nats, modules, stack, tg)
                else:
                    workers = start_workers(opts, nats, nats_url, modules)
                    opts.announce(
                        f"workers      {opts.workers} x {opts.concurrency} slots "
                        f"({', '.join(modules)})"
                    )
                try:
                    yield DevStack(nats_url, nats, master, region, workers, api_url, scaler)
                finally:
                    if scaler is not None:
                        scaler.stop()
                        await asyncio.wait({scaler_task})
                    await stop_processes(workers)
                    workers = []
                    if api_task is not None:
                        api_task.cancel()
                    region_task.cancel()
                    master.stop()
    finally:
        await stop_processes(workers)
        if embedded is not None:
            await embedded.astop()
        held.close()


def _ports(opts: DevOptions) -> list[tuple[int, str, str]]:
    """The ports this run will listen on, what on each, and the flag that moves it."""
    ports: list[tuple[int, str, str]] = []
    if opts.nats_url is None and opts.nats_port is not None:
        ports.append((opts.nats_port, "the embedded nats-server", "--nats-port"))
    if not opts.no_api:
        ports.append((opts.api_port, "the API and dashboard", "--port"))
        ports.append((opts.grpc_port, "the gRPC API", "--grpc-port"))
    return ports


async def _start_embedded(opts: DevOptions) -> tuple[EmbeddedNats, NatsConfig]:
    """Start the embedded server with a NATS user per role; their credentials in the data dir."""
    store = Path(opts.data_dir or ".tierq") / "nats"
    store.mkdir(parents=True, exist_ok=True)
    # The server writes the credentials it runs with next to its config; reuse them.
    users = _dev_users(store / "credentials.json", opts.prefix, opts.region)
    port = opts.nats_port or (DEFAULT_NATS_PORT if _port_free(DEFAULT_NATS_PORT) else None)
    embedded = EmbeddedNats(store, port=port, sync_always=opts.sync_always, users=users)
    await embedded.astart()
    credentials = embedded.credentials_file
    assert credentials is not None
    opts.announce(f"nats-server  {embedded.url}  (JetStream data in {store})")
    opts.announce(f"             NATS users per role in {credentials} (keep it private)")
    env = f"TIERQ_NATS_CREDENTIALS={credentials.resolve()}"
    if embedded.port != DEFAULT_NATS_PORT:
        env = f"TIERQ_NATS={embedded.url} {env}"
    opts.announce(f"             clients: export {env}")
    nats = NatsConfig(servers=(embedded.url,), prefix=opts.prefix, credentials=str(credentials))
    return embedded, nats


def _dev_users(path: Path, prefix: str, region: str) -> NatsUsers:
    """The credentials in ``path`` if they serve this prefix and region, else new ones.

    Kept across restarts, so processes started with the file keep working.
    """
    if path.exists():
        try:
            users = NatsUsers.load(path)
        except InvalidRequestError as exc:
            log.warning("%s; writing new credentials", exc)
        else:
            roles: list[tuple[str, str | None]] = [("master", None), ("api", None)]
            roles += [("region", region), ("worker", region)]
            if users.prefix == prefix and all(users.find(r, g) for r, g in roles):
                # A file from an older tierq lacks the newer roles: added, the rest kept.
                return users.complete()
    return NatsUsers.generate(prefix, regions=[region])


async def _wait_ready(ready: asyncio.Event, task: asyncio.Task[None]) -> None:
    waiter = asyncio.ensure_future(ready.wait())
    done, _ = await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()  # raises what stopped it
        raise RuntimeError("service stopped during start-up")


async def _start_api(
    opts: DevOptions, nats: NatsConfig, tg: asyncio.TaskGroup
) -> tuple[str | None, asyncio.Task[None] | None]:
    if opts.no_api:
        return None, None
    from .api.config import ApiConfig
    from .api.server import run_api
    from .dashboard import install

    config = ApiConfig(
        nats=nats.for_role("api"), host=opts.api_host, port=opts.api_port, grpc_port=opts.grpc_port
    )
    task: asyncio.Task[None] = tg.create_task(run_api(config, extend=install))
    url = f"http://{opts.api_host}:{opts.api_port}"
    opts.announce(
        f"api          {url}  (dashboard at /, gRPC on {opts.grpc_port}; "
        "open access: no tokens, loopback only)"
    )
    return url, task


async def _start_autoscaler(
    opts: DevOptions,
    nats: NatsConfig,
    modules: list[str],
    stack: contextlib.AsyncExitStack,
    tg: asyncio.TaskGroup,
) -> tuple[Autoscaler, asyncio.Task[None]]:
    """The local autoscaler in place of a fixed pool (its workers' files in the data dir)."""
    scaler_nats = nats.for_role("autoscaler")
    engine = await connect(scaler_nats.connect_options(name="tierq-autoscale"))
    stack.push_async_callback(engine.close)
    config = AutoscaleConfig(
        nats=msgspec.structs.replace(nats, servers=(nats.servers[0],)),
        modules=tuple(modules),
        region=opts.region,
        concurrency=opts.concurrency,
        pool=opts.pool,
        drain_grace=10.0,
        state_dir=str(Path(opts.data_dir or ".tierq") / "autoscale"),
    )
    scaler = Autoscaler(config, engine)
    task = tg.create_task(scaler.run())
    await _wait_ready(scaler.ready, task)
    opts.announce(
        f"autoscaler   region {opts.region!r}, {opts.concurrency} slots per worker "
        "(autoscale.* settings; the dashboard's settings page changes them)"
    )
    return scaler, task


async def run_dev(opts: DevOptions) -> None:
    """Run until interrupted; with ``demo`` submit the sample workflow and show it."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Event loops without signal support raise this; Ctrl-C still stops the run there.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    started = asyncio.Event()
    body = asyncio.ensure_future(_run_until(opts, stop, started))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({body, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not body.done() and not started.is_set():
            # Still starting, e.g. a standby master waiting for the lease: a signal must not
            # wait for that. Cancelling unwinds the start (stops what already runs).
            opts.announce("stopping (during start-up)...")
            body.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await body
    finally:
        stopping.cancel()
        body.cancel()


async def _run_until(opts: DevOptions, stop: asyncio.Event, started: asyncio.Event) -> None:
    async with dev_stack(opts) as stack:
        started.set()
        if opts.demo:
            from .demo import run_demo_against

            demo = asyncio.ensure_future(run_demo_against(stack.nats))
            await asyncio.wait(
                {demo, asyncio.ensure_future(stop.wait())}, return_when=asyncio.FIRST_COMPLETED
            )
            if demo.done():
                demo.result()
                opts.announce("demo finished; tierq dev keeps running (Ctrl-C to stop)")
            else:
                demo.cancel()
        await stop.wait()
        opts.announce("stopping...")
