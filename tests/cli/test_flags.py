"""Bad flags, bad JSON and unreachable servers: one clear line, non-zero exit, no traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tierq.cli import main
from tierq.engine import free_port


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize(
    "command",
    [
        "dev",
        "master",
        "region",
        "worker",
        "api",
        "nats-users",
        "submit",
        "status",
        "tasks",
        "workflows",
        "cancel",
    ],
)
def test_every_command_has_help(runner: CliRunner, command: str) -> None:
    result = runner.invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--help" in result.output


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["submit", "t", "--args", "[1,"], "not valid JSON"),
        (["submit", "t", "--args", '{"a": 1}'], "must be a JSON array"),
        (["submit", "t", "--kwargs", "[1]"], "must be a JSON object"),
        (["submit", "t", "--priority", "high"], "'high' is not a valid integer"),
        (["submit", "t", "--delay", "-1"], "--delay"),
        (["submit", "t", "--priority", "5000"], "priority must be between"),
        (["submit", "t", "--args", '["\\u00e9", {"ok": 1}]', "--task-region", "eu.west"], "region"),
        (["submit"], "Missing argument 'NAME'"),
        (["worker"], "Missing argument 'MODULES...'"),
        (["worker", "m", "--pool", "fork"], "'fork' is not one of"),
        (["worker", "m", "--concurrency", "0"], "--concurrency"),
        (["tasks", "--state", "sleeping"], "'sleeping' is not one of"),
        (["tasks", "--limit", "0"], "--limit"),
        (["dev"], "--demo"),
        (["dev", "--workers", "-1"], "--workers"),
        (["nonsense"], "No such command"),
    ],
)
def test_bad_input_exits_2_with_a_message(runner: CliRunner, argv: list[str], message: str) -> None:
    result = runner.invoke(main, argv)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_worker_with_a_missing_module(runner: CliRunner) -> None:
    result = runner.invoke(
        main, ["worker", "no_such_module_xyz.tasks", "--nats", "nats://127.0.0.1:1"]
    )
    assert result.exit_code == 2, result.output
    assert "cannot import module 'no_such_module_xyz.tasks'" in result.output
    assert "Traceback" not in result.output


def test_region_name_must_be_a_token(runner: CliRunner) -> None:
    result = runner.invoke(main, ["region", "--name", "eu.west", "--nats", "nats://127.0.0.1:1"])
    assert result.exit_code == 2, result.output
    assert "region" in result.output


@pytest.mark.parametrize(
    "argv",
    [
        ["submit", "some.task", "--args", "[1, 2]"],
        ["status", "0123"],
        ["tasks"],
        ["workflows", "wf_1"],
        ["cancel", "0123"],
    ],
)
def test_unreachable_server_is_one_line(runner: CliRunner, argv: list[str]) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    result = runner.invoke(main, [*argv, "--nats", url])
    assert result.exit_code == 1, result.output
    assert "cannot reach NATS" in result.output
    assert "tierq dev" in result.output
    assert "Traceback" not in result.output


def test_nats_url_comes_from_the_environment(runner: CliRunner) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    result = runner.invoke(main, ["tasks"], env={"TIERQ_NATS": url})
    assert result.exit_code == 1
    assert url in result.output


def test_dev_and_worker_take_the_same_worker_options() -> None:
    """One definition of ``--region``, ``--concurrency`` and ``--pool`` for both commands."""

    def options(command: str) -> dict[str, tuple[object, ...]]:
        params = main.commands[command].params
        return {
            p.name: (tuple(p.opts), repr(p.type), p.default, getattr(p, "help", None))
            for p in params
            if p.name in ("region", "concurrency", "pool", "prefix")
        }

    dev, worker = options("dev"), options("worker")
    assert set(dev) == {"region", "concurrency", "pool", "prefix"}
    assert dev == worker
