"""`tierq nats-users`: the credentials file and a server config block that nats-server runs."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from tierq.cli import main
from tierq.config import NatsConfig
from tierq.engine import EmbeddedNats, NatsUsers, connect
from tierq.errors import PermissionDeniedError, UnauthenticatedError


def test_writes_the_file_once_and_prints_the_same_block(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    runner = CliRunner()
    first = runner.invoke(main, ["nats-users", str(path), "--region", "eu"])
    assert first.exit_code == 0, first.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    users = NatsUsers.load(path)
    assert users.find("worker", "eu") is not None and users.find("worker", "default") is None
    assert users.find("operator") is not None  # tierq settings' user
    assert '"tierq.master.settings"' in first.stdout.split('"tierq-operator"')[1].split("}}")[0]
    again = runner.invoke(main, ["nats-users", str(path), "--region", "eu"])
    assert again.exit_code == 0 and again.stdout == first.stdout
    other = runner.invoke(main, ["nats-users", str(path), "--region", "us"])
    assert other.exit_code == 2 and "start over" in other.output


@pytest.mark.integration
def test_a_file_from_before_a_role_existed_gains_its_user(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    full = NatsUsers.generate("tierq", regions=["eu"])
    older = NatsUsers(prefix="tierq", users=tuple(u for u in full.users if u.role != "autoscaler"))
    older.save(path)
    result = CliRunner().invoke(main, ["nats-users", str(path), "--region", "eu"])
    assert result.exit_code == 0, result.output
    assert "added users" in result.stderr and "autoscaler" in result.stderr
    after = NatsUsers.load(path)
    assert after.find("autoscaler") is not None
    assert after.find("master") == older.find("master")  # the others keep their passwords
    assert '"tierq-autoscaler"' in result.stdout


async def test_a_server_runs_the_printed_block(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    result = CliRunner().invoke(main, ["nats-users", str(path)])
    assert result.exit_code == 0, result.output
    async with EmbeddedNats(tmp_path / "srv", extra_config=result.stdout) as srv:
        with pytest.raises(UnauthenticatedError):
            await connect(NatsConfig(servers=(srv.url,)).connect_options(name="anonymous"))
        client = NatsConfig(servers=(srv.url,), credentials=str(path)).for_role("client")
        engine = await connect(client.connect_options(name="client"))
        try:
            with pytest.raises(PermissionDeniedError):
                await engine.request("tierq.master.settings", b"", timeout=1.0)
        finally:
            await engine.close()


def test_leaf_prints_a_leaf_nodes_config_for_one_region(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    runner = CliRunner()
    assert runner.invoke(main, ["nats-users", str(path), "--region", "eu", "--region", "us"])
    users = NatsUsers.load(path)
    leaf = users.find("leaf", "eu")
    assert leaf is not None and leaf.user == "tierq-leaf-eu"
    result = runner.invoke(
        main, ["nats-users", str(path), "--leaf", "eu", "--hub", "nats-leaf://hub:7422"]
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert '"tierq-region-eu"' in out and '"tierq-worker-eu"' in out
    assert "tierq-region-us" not in out and "tierq-master" not in out
    assert f'url: "nats-leaf://tierq-leaf-eu:{leaf.password}@hub:7422"' in out
    for args, match in (
        (["--leaf", "eu"], "--leaf needs --hub"),
        (["--leaf", "eu", "--hub", "hub:7422"], "nats-leaf://host:port"),
        (["--leaf", "eu", "--hub", "nats-leaf://u:p@hub:7422"], "nats-leaf://host:port"),
        (["--leaf", "asia", "--hub", "nats-leaf://hub:7422"], "start over"),
    ):
        bad = runner.invoke(main, ["nats-users", str(path), *args])
        assert bad.exit_code == 2 and match in bad.output, (args, bad.output)


def test_a_file_from_before_leaf_users_gains_one_per_region(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    full = NatsUsers.generate("tierq", regions=["eu", "us"])
    NatsUsers(prefix="tierq", users=tuple(u for u in full.users if u.role != "leaf")).save(path)
    result = CliRunner().invoke(main, ["nats-users", str(path), "--region", "eu"])
    assert result.exit_code == 0, result.output
    assert "tierq-leaf-eu" in result.stderr and "tierq-leaf-us" in result.stderr
    after = NatsUsers.load(path)
    assert after.find("leaf", "eu") is not None and after.find("leaf", "us") is not None
