"""The shell task type: running a command, and the seed's status document."""

from __future__ import annotations

import msgspec
import pytest

from tierq.api.shell import ScheduleIn, ShellResult, spec_for, status_of
from tierq.api.shell_runner import result_of, run_command
from tierq.core.model import ErrorSummary, Task, TaskState
from tierq.worker.outcome import ReportedError


async def test_success_keeps_exit_code_and_output() -> None:
    result = await run_command("echo hello; echo world >&2", 10)
    assert result.exit_code == 0 and not result.timed_out
    assert result.output == "hello\nworld\n"


async def test_failure_exit_code() -> None:
    result = await run_command("exit 3", 10)
    assert result.exit_code == 3


async def test_timeout_kills_the_whole_group() -> None:
    result = await run_command("sleep 30 & sleep 30; echo never", 0.3)
    assert result.timed_out
    assert "never" not in result.output


async def test_only_the_tail_is_kept() -> None:
    result = await run_command("seq 1 100000", 10, tail=100)
    assert len(result.output) == 100
    assert result.output.endswith("100000\n")


def test_outcomes() -> None:
    ok = result_of(ShellResult(exit_code=0, output="hi"))
    assert ok["exit_code"] == 0 and ok["output"] == "hi"
    with pytest.raises(ReportedError) as bad:
        result_of(ShellResult(exit_code=2, output="oops"))
    assert bad.value.summary.type == "ShellExitError"
    assert "exit code 2" in bad.value.summary.message and bad.value.summary.traceback == "oops"
    with pytest.raises(ReportedError) as slow:
        result_of(ShellResult(exit_code=-9, output="", timed_out=True))
    assert slow.value.summary.timeout


def test_schedule_and_status() -> None:
    body = msgspec.json.decode(
        b'{"command": "ls", "scheduled_at": "2030-01-01T00:00:00Z"}', type=ScheduleIn
    )
    spec = spec_for(body)
    assert spec.name == "shell" and spec.kwargs["command"] == "ls"
    assert spec.retry.max_attempts == 1 and spec.run_at == 1_893_456_000.0
    task = Task(id="t", spec=spec, state=TaskState.PENDING, submitted_at=1.0)
    assert status_of(task).status == "pending"
    task.state = TaskState.DEAD
    task.error = ErrorSummary(
        type="ShellExitError", message="command failed with exit code 4", traceback="out"
    )
    status = status_of(task)
    assert (status.exit_code, status.output, status.command) == (4, "out", "ls")
    task.state = TaskState.SUCCEEDED
    task.error = None
    task.result = {"exit_code": 0, "output": "fine"}
    assert status_of(task).exit_code == 0
