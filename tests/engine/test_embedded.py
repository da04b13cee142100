from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tierq import testing
from tierq.engine import ConnectOptions, EmbeddedNats, connect, find_nats_server, free_port
from tierq.errors import EngineUnavailableError


@pytest.fixture
async def nats_server() -> AsyncIterator[EmbeddedNats]:
    """An open server: these tests are about connections, on subjects of their own.

    NATS users and permissions are tested in test_auth.py.
    """
    async with testing.nats_server(auth=False) as server:
        yield server


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); look at its state.
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split()[2] != "Z"


def test_binary_comes_from_the_wheel() -> None:
    path = find_nats_server()
    assert Path(path).name.startswith("nats-server")
    assert os.access(path, os.X_OK)


@pytest.mark.starts_nats
def test_sync_start_stop_is_idempotent(tmp_path: Path) -> None:
    srv = EmbeddedNats(tmp_path / "store")
    with srv:
        assert srv.running
        pid = srv.pid
        assert pid is not None and _alive(pid)
        assert srv.url == f"nats://127.0.0.1:{srv.port}"
        assert (tmp_path / "store" / "nats-server.conf").exists()
    assert not srv.running
    assert not _alive(pid)
    srv.stop()  # again: nothing happens
    srv.kill()


def test_config_carries_options(tmp_path: Path) -> None:
    srv = EmbeddedNats(tmp_path, sync_always=True, max_payload=4 * 1024 * 1024)
    text = srv._config()
    assert "sync_interval: always" in text
    assert "max_payload: 4194304" in text
    assert "sync_interval" not in EmbeddedNats(tmp_path)._config()


async def test_kill_and_restart_keep_url_and_data(nats_server: EmbeddedNats) -> None:
    eng = await connect(ConnectOptions(servers=[nats_server.url]))
    try:
        await eng.js.add_stream(name="KEEP", subjects=["keep"])
        await eng.js.publish("keep", b"1")
    finally:
        await eng.close()
    old_pid = nats_server.pid
    assert old_pid is not None
    nats_server.kill()
    assert not nats_server.running and not _alive(old_pid)
    await nats_server.arestart()
    assert nats_server.pid != old_pid
    eng = await connect(ConnectOptions(servers=[nats_server.url]))
    try:
        info = await eng.js.stream_info("KEEP")
        assert info.state.messages == 1
    finally:
        await eng.close()


@pytest.mark.starts_nats
async def test_sync_restart(tmp_path: Path) -> None:
    srv = EmbeddedNats(tmp_path)
    try:
        srv.start()
        first = srv.pid
        srv.restart()
        assert srv.running and srv.pid != first
    finally:
        srv.stop()


@pytest.mark.starts_nats
async def test_testing_kit_durable_profile() -> None:
    async with testing.nats_server(durable=True) as srv:
        assert srv.sync_always
        assert "sync_interval: always" in srv.config_file.read_text()
        store = srv.store_dir
        pid = srv.pid
    assert pid is not None and not _alive(pid)
    assert not store.exists()


async def test_port_in_use_fails_clearly(nats_server: EmbeddedNats, tmp_path: Path) -> None:
    other = EmbeddedNats(tmp_path, port=nats_server.port, startup_timeout=5)
    with pytest.raises(EngineUnavailableError, match="nats-server exited"):
        await other.astart()
    assert not other.running


def test_free_port_is_bindable() -> None:
    assert 1024 < free_port() < 65536


@pytest.mark.skipif(not Path("/proc").exists(), reason="needs Linux")
def test_no_orphan_when_parent_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed parent runs no atexit; the kernel's parent-death signal stops the server."""
    script = (
        "import sys, time\n"
        "from tierq.engine import EmbeddedNats\n"
        f"srv = EmbeddedNats({str(tmp_path)!r}).start()\n"
        "print(srv.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert _alive(pid)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid)
