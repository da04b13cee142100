"""`tierq dev`'s NATS logins: against a server of its own, and against one given with --nats."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest

from tierq.config import NatsConfig
from tierq.dev import DevOptions, _dev_users, dev_stack
from tierq.engine import EmbeddedNats, NatsUsers, free_port

from .conftest import tierq as run_tierq

pytestmark = pytest.mark.integration


async def test_dev_nats_url_logs_in_with_the_given_credentials(nats_server: EmbeddedNats) -> None:
    """`tierq dev --nats URL` with TIERQ_NATS_CREDENTIALS: each service as its own role."""
    lines: list[str] = []
    opts = DevOptions(
        nats=NatsConfig.from_env(servers=nats_server.url),
        nats_url=nats_server.url,
        modules=["tierq.demo"],
        workers=0,
        no_api=True,
        announce=lines.append,
    )
    async with dev_stack(opts) as stack:
        assert stack.master.ready.is_set() and stack.region.ready.is_set()
        assert stack.master.engine.options.user == "tierq-master"
        assert stack.region.engine.options.user == "tierq-region-default"


def test_dev_keeps_its_credentials_unless_they_do_not_fit(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    first = _dev_users(path, "tierq", "default")
    first.save(path)  # as the embedded server does when it starts
    assert _dev_users(path, "tierq", "default") == first
    other_region = _dev_users(path, "tierq", "eu")
    assert other_region != first and other_region.find("worker", "eu") is not None
    path.write_text("{")
    assert isinstance(_dev_users(path, "tierq", "default"), NatsUsers)


async def test_a_standby_tierq_dev_stops_on_sigterm(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    """A second `tierq dev` on the same NATS waits for the leader lease; SIGTERM ends it."""
    lines: list[str] = []
    opts = DevOptions(
        nats=NatsConfig.from_env(servers=nats_server.url),
        nats_url=nats_server.url,
        modules=["tierq.demo"],
        workers=0,
        no_api=True,
        announce=lines.append,
    )
    async with dev_stack(opts):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.getcwd()
        log = (tmp_path / "standby.log").open("wb")
        standby = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tierq",
            "dev",
            "--demo",
            "--workers",
            "0",
            "--no-api",
            "--nats",
            nats_server.url,
            "--data-dir",
            str(tmp_path / "data"),
            env=env,
            stdout=log,
            stderr=log,
        )
        try:
            await _wait_for_masters(nats_server, 2)  # the second one waits as a standby
            assert standby.returncode is None, (tmp_path / "standby.log").read_text()
            standby.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(20):
                    code = await standby.wait()
            except TimeoutError:
                log.flush()
                text = (tmp_path / "standby.log").read_text()
                raise AssertionError(f"the standby ignored SIGTERM for 20 s:\n{text}") from None
            assert code == 0, (tmp_path / "standby.log").read_text()
        finally:
            if standby.returncode is None:
                standby.kill()
                await standby.wait()
            log.close()


async def _wait_for_masters(server: EmbeddedNats, count: int) -> None:
    """Until ``count`` connections named tierq-master show in the server's /connz."""
    url = f"http://127.0.0.1:{server.monitor_port}/connz"
    async with httpx.AsyncClient() as http:
        for _ in range(400):
            conns = (await http.get(url)).json().get("connections") or []
            if sum(c.get("name") == "tierq-master" for c in conns) >= count:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} masters connected")


async def test_dev_refuses_a_missing_module_before_starting_anything(tmp_path: Path) -> None:
    done = await run_tierq("dev", "myapp.nosuch", "--no-api", "--workers", "0", cwd=tmp_path)
    assert done.code != 0
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error:") and "cannot find task module 'myapp.nosuch'" in lines[-1]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / ".tierq").exists()  # nothing was started or created


async def test_dev_names_the_process_on_a_port_it_needs(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ("dev", "--demo", "--port", str(port), "--workers", "0")
        done = await run_tierq(*args, cwd=tmp_path)
    assert done.code != 0
    last = done.stderr.strip().splitlines()[-1]
    assert f"port {port} (the API and dashboard) is in use by pid {os.getpid()}" in last, last
    assert "--port" in last and "Traceback" not in done.stderr
    assert not (tmp_path / ".tierq").exists()


async def test_a_second_dev_on_one_data_dir_is_refused(tmp_path: Path) -> None:
    """Issue 15: a second `tierq dev` in one folder opened the same JetStream store, took the
    lease and died with a 60-line ExceptionGroup."""
    opts = DevOptions(
        modules=["tierq.demo"],
        workers=0,
        no_api=True,
        data_dir=str(tmp_path / ".tierq"),
        announce=lambda line: None,
    )
    async with dev_stack(opts):
        done = await run_tierq("dev", "--demo", "--no-api", "--workers", "0", cwd=tmp_path)
    assert done.code != 0
    last = done.stderr.strip().splitlines()[-1]
    assert f"is in use by another tierq dev (pid {os.getpid()})" in last, done.stderr[-2000:]
    assert "--data-dir" in last and "Traceback" not in done.stderr


def test_dev_adds_a_new_role_to_an_older_file_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    full = NatsUsers.generate("tierq", regions=["default"])
    NatsUsers(users=tuple(u for u in full.users if u.role != "operator")).save(path)
    users = _dev_users(path, "tierq", "default")
    assert users.find("operator") is not None
    assert users.find("master") == full.find("master")  # running processes keep their login


async def test_tierq_settings_works_out_of_the_box_next_to_tierq_dev(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tierq dev` in a folder, then `tierq settings set` in the same folder: the CLI finds
    the credentials file dev wrote and logs in as its operator user."""
    monkeypatch.delenv("TIERQ_NATS_CREDENTIALS", raising=False)
    port = free_port()
    opts = DevOptions(
        modules=["tierq.demo"],
        workers=0,
        no_api=True,
        nats_port=port,
        data_dir=str(tmp_path / ".tierq"),
        announce=lambda line: None,
    )
    url = f"nats://127.0.0.1:{port}"
    async with dev_stack(opts) as stack:
        done = await run_tierq(
            "settings", "set", "autoscale.max_workers=3", "--nats", url, cwd=tmp_path
        )
        assert done.code == 0, done.stderr
        assert stack.master.state.settings.autoscale.max_workers == 3
        got = await run_tierq(
            "settings", "get", "autoscale.max_workers", "--nats", url, cwd=tmp_path
        )
        assert got.stdout.strip() == "3"
