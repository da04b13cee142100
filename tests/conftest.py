"""Shared fixtures: a real nats-server per test, and an engine connected to it.

The server runs with one NATS user per role and least-privilege permissions, as in
production (``TIERQ_TEST_NATS_AUTH=0`` runs the suite against an open server instead). The
fixture points ``TIERQ_NATS_CREDENTIALS`` at the server's credentials file, so every tierq
process a test starts (services, SDK, CLI, worker processes) logs in as its own role.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from tierq import testing
from tierq.engine import EmbeddedNats, Engine, connect

#: Whether test servers require a login (the default, as ``tierq dev`` does).
NATS_AUTH = os.environ.get("TIERQ_TEST_NATS_AUTH", "1") != "0"


@pytest.fixture
async def nats_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[EmbeddedNats]:
    """A JetStream nats-server on a free loopback port; stopped after the test."""
    for var in ("TIERQ_NATS_USER", "TIERQ_NATS_PASSWORD", "TIERQ_NATS_CREDENTIALS"):
        monkeypatch.delenv(var, raising=False)
    async with testing.nats_server(auth=NATS_AUTH) as server:
        if server.credentials_file is not None:
            monkeypatch.setenv("TIERQ_NATS_CREDENTIALS", str(server.credentials_file))
        yield server


@pytest.fixture
async def engine(nats_server: EmbeddedNats) -> AsyncIterator[Engine]:
    """An :class:`Engine` connected to :func:`nats_server` as the master; closed after the test."""
    eng = await connect(nats_server.connect_options("master", name="tierq-test"))
    try:
        yield eng
    finally:
        await eng.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``integration`` every test that starts a real nats-server, whatever its module
    says: those using the ``nats_server`` fixture (directly or through another fixture), and
    the process-level suites (e2e, chaos, browser). ``pytest -m "not integration"`` is then the
    NATS-free part of the suite."""
    process_suites = {"browser", "chaos", "e2e"}
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if (
            "nats_server" in fixtures
            or "open_engine" in fixtures
            or process_suites & set(item.path.parts)
            or item.get_closest_marker("e2e") is not None
            or item.get_closest_marker("browser") is not None
            or item.get_closest_marker("starts_nats") is not None
        ):
            item.add_marker(pytest.mark.integration)


ConnectAs = Callable[..., Awaitable[Engine]]


@pytest.fixture
async def connect_as(nats_server: EmbeddedNats) -> AsyncIterator[ConnectAs]:
    """Connect as the NATS user of a role: ``await connect_as("worker", region="eu")``."""
    engines: list[Engine] = []

    async def connect_role(role: str, region: str = "default", **options: Any) -> Engine:
        eng = await connect(
            nats_server.connect_options(role, region, name=f"tierq-test-{role}", **options)
        )
        engines.append(eng)
        return eng

    try:
        yield connect_role
    finally:
        for eng in engines:
            await eng.close()


@pytest.fixture
async def open_engine() -> AsyncIterator[Engine]:
    """An :class:`Engine` on a server without users: for engine mechanics on names of a
    test's own (other prefixes, other streams), which no tierq role is allowed."""
    async with testing.nats_server(auth=False) as server:
        eng = await connect(server.connect_options(name="tierq-test"))
        try:
            yield eng
        finally:
            await eng.close()


# -- no process outlives the suite --------------------------------------------------------
#
# Every process a test starts is stopped by the test. Each test's new child processes are
# noted with the test's id; whatever still runs when the session ends is named with the test
# that started it, and the run fails.

_STARTED_BY: dict[int, tuple[str, str]] = {}


def _children() -> dict[int, str]:
    """This process's running children (not zombies): pid -> command line."""
    out: dict[int, str] = {}
    task_dir = Path(f"/proc/{os.getpid()}/task")
    try:
        threads = list(task_dir.iterdir())
    except OSError:  # not Linux
        return out
    for thread in threads:
        try:
            pids = (thread / "children").read_text().split()
        except OSError:
            continue
        for pid in map(int, pids):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if stat[stat.rindex(")") + 2] != "Z":
                out[pid] = cmd.decode(errors="replace").strip()[:300]
    return out


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    before = _children()
    yield
    for pid, cmd in _children().items():
        if pid not in before:
            _STARTED_BY.setdefault(pid, (item.nodeid, cmd))


def pytest_sessionfinish(session: pytest.Session) -> None:
    left = _children()
    if not left:
        return
    lines = [
        f"  pid {pid}: {cmd!r}, started during {_STARTED_BY.get(pid, ('(before any test)',))[0]}"
        for pid, cmd in sorted(left.items())
    ]
    for pid in left:  # not left to run on after the suite
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    text = "processes a test started were still running (killed now):\n" + "\n".join(lines)
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line(text, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
