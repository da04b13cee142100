"""A real stack for the browser tests, and a real Chromium driving the dashboard.

The stack (nats-server, master, region, an in-process worker running ``btasks``, and two
API servers: one open, one with tokens) runs on an event loop in a background thread, so
the tests themselves can use Playwright's sync API. It is started once per session: each
test submits tasks of its own and looks only at those. Everything is stopped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tierq.api import ApiConfig, ApiServer
from tierq.autoscale import AutoscaleConfig, Autoscaler
from tierq.config import NatsConfig, RegionConfig, WorkerConfig
from tierq.core.settings import Settings
from tierq.dashboard import install
from tierq.engine import Engine, connect
from tierq.region import Region
from tierq.testing import LocalCluster, local_cluster, nats_server
from tierq.worker import run_worker

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
ADMIN_TOKEN = "browser-admin-token-0123456789abcdef"
READ_TOKEN = "browser-read-token-0123456789abcdef"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


def api_server(nats_url: str, credentials: str, tokens: str | None) -> ApiServer:
    """An API as ``tierq api`` assembles it (REST app, dashboard routes and guard), on a free
    loopback port, without gRPC."""
    config = ApiConfig(
        nats=NatsConfig(servers=(nats_url,), credentials=credentials).for_role("api"),
        port=0,
        grpc_port=None,
        tokens=tokens,
        rate_limit=0.0,
        request_timeout=5.0,
        sse_keepalive=2.0,
    )
    return ApiServer(config, extend=install)


class LiveStack:
    """The stack on a background event loop; ``call`` runs a coroutine there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._exit = AsyncExitStack()
        self.cluster: LocalCluster | None = None
        self.open_api: ApiServer | None = None
        self.auth_api: ApiServer | None = None
        self.nats_url = ""
        self.credentials = ""

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def start(self) -> None:
        self._thread.start()
        self.call(self._start())

    async def _start(self) -> None:
        server = await self._exit.enter_async_context(nats_server(regions=("default", "hold")))
        self.nats_url = server.url
        assert server.credentials_file is not None
        self.credentials = credentials = str(server.credentials_file)
        self.cluster = await self._exit.enter_async_context(
            local_cluster(
                server.url,
                credentials=credentials,
                settings=Settings(region_lease_seconds=3.0),
                worker_lease_seconds=2.0,
                heartbeat_interval=0.3,
            )
        )
        await self.cluster.start_worker("tests.browser.btasks", concurrency=8)
        self.open_api = await self._exit.enter_async_context(
            api_server(server.url, credentials, None)
        )
        tokens = f"admin:{ADMIN_TOKEN},read:{READ_TOKEN}"
        self.auth_api = await self._exit.enter_async_context(
            api_server(server.url, credentials, tokens)
        )

    def start_worker(self, concurrency: int = 2) -> None:
        assert self.cluster is not None
        cluster = self.cluster

        async def start() -> None:
            await cluster.start_worker("tests.browser.btasks", concurrency=concurrency)

        self.call(start())

    def start_region(self, name: str, *, prefetch: int, concurrency: int) -> Callable[[], None]:
        """Another region, leasing ``prefetch`` tasks beyond its workers' free slots, with one
        in-process worker of ``concurrency`` slots; returns what stops both."""
        nats = NatsConfig(servers=(self.nats_url,), credentials=self.credentials)

        async def start() -> tuple[asyncio.Task[None], asyncio.Task[None], Engine]:
            region_nats = nats.for_role("region", name)
            engine = await connect(region_nats.connect_options(name=f"tierq-test-region-{name}"))
            config = RegionConfig(
                nats=region_nats,
                name=name,
                prefetch=prefetch,
                worker_lease_seconds=2.0,
                heartbeat_interval=0.3,
            )
            region = Region(config, engine)
            served = asyncio.create_task(region.run())
            await asyncio.wait_for(region.ready.wait(), 10)
            worker = WorkerConfig(
                nats=nats.for_role("worker", name),
                modules=("tests.browser.btasks",),
                region=name,
                concurrency=concurrency,
                drain_grace=1.0,
            )
            working = asyncio.create_task(run_worker(worker, handle_signals=False))
            return served, working, engine

        served, working, engine = self.call(start())

        async def stop() -> None:
            for task in (working, served):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 10)
            await engine.close()

        return lambda: self.call(stop())

    def start_autoscaler(
        self, state_dir: str, modules: tuple[str, ...] = ("tests.browser.btasks",)
    ) -> Callable[[], None]:
        """An autoscaler for region ``default`` (local provider, workers of ``modules`` as
        real processes); returns what stops it and drains its workers."""
        nats = NatsConfig(servers=(self.nats_url,), credentials=self.credentials)

        async def start() -> tuple[asyncio.Task[None], Autoscaler, Engine]:
            engine = await connect(nats.for_role("autoscaler").connect_options(name="autoscale"))
            config = AutoscaleConfig(
                nats=nats,
                modules=modules,
                concurrency=2,
                drain_grace=5.0,
                state_dir=state_dir,
                interval=0.5,
            )
            scaler = Autoscaler(config, engine)
            running = asyncio.create_task(scaler.run())
            await asyncio.wait_for(scaler.ready.wait(), 10)
            return running, scaler, engine

        running, scaler, engine = self.call(start())

        async def stop() -> None:
            scaler.stop()
            await asyncio.wait({running}, timeout=30)
            await engine.close()

        return lambda: self.call(stop())

    def stop(self) -> None:
        try:
            self.call(self._exit.aclose(), timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


@pytest.fixture(scope="package")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    return path


@pytest.fixture(scope="package")
def stack() -> Iterator[LiveStack]:
    live = LiveStack()
    try:
        live.start()
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="package")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Dashboard:
    """A page on one API, with its console errors and dialogs recorded."""

    def __init__(self, browser: Any, base: str) -> None:
        self.base = base
        self.context = browser.new_context(viewport={"width": 1360, "height": 860})
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on(
            "console",
            lambda msg: self.errors.append(msg.text) if msg.type == "error" else None,
        )

        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        self.page.on("dialog", on_dialog)

    def script_errors(self) -> list[str]:
        """Console errors other than the browser's note of an expected 4xx from the API."""
        refused = "Failed to load resource: the server responded with a status of 4"
        return [e for e in self.errors if not e.startswith(refused)]

    def goto(self, route: str = "") -> None:
        self.page.goto(f"{self.base}/{('#' + route) if route else ''}")

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def dash(browser: Any, stack: LiveStack) -> Iterator[Dashboard]:
    assert stack.open_api is not None
    d = Dashboard(browser, stack.open_api.url)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def api(stack: LiveStack) -> Iterator[httpx.Client]:
    """A plain HTTP client on the open API, to submit and inspect tasks."""
    assert stack.open_api is not None
    with httpx.Client(base_url=stack.open_api.url, timeout=20) as client:
        yield client


def submit(api: httpx.Client, name: str, *args: Any, **spec: Any) -> str:
    """Submit one task over REST; returns its id."""
    r = api.post("/v1/tasks", json={"name": name, "args": list(args), **spec})
    assert r.status_code == 201, r.text
    task_id: str = r.json()["id"]
    return task_id


def task_state(api: httpx.Client, task_id: str) -> str:
    r = api.get(f"/v1/tasks/{task_id}")
    assert r.status_code == 200, r.text
    state: str = r.json()["state"]
    return state
