"""The API's in-process worker for the built-in ``shell`` task type.

It is an ordinary :class:`tierq.worker.runtime.Worker` (register, long-poll pulls,
heartbeats, batched reports, cancellation, drain) with one task registered, ``shell``, and one
difference: it talks to its region on the region's *trusted* subjects, which only the API's
NATS user may publish to. The region lets only a worker registered there serve ``shell``, and
refuses anything on the ordinary subjects that names it, so no worker credential can register
for shell tasks, pull them or report their outcomes.

Each attempt checks that an admin submitted the task through the API (its arguments carry a
signature bound to its idempotency key, see :func:`tierq.api.shell.sign`), then runs the
command with ``/bin/sh`` in its own process group, killed whole at the command's timeout.
Exit code 0 is success (result ``{"exit_code": 0, "output": …, "duration": …}``); anything
else fails the attempt with the exit code in the message and the output tail as traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import time
from collections import deque
from typing import Any

import msgspec

from ..client import App, TaskContext
from ..config import NatsConfig, WorkerConfig
from ..core.model import ErrorSummary, JSONValue
from ..engine import Engine, Subjects
from ..errors import TierqError
from ..rpc import MasterClient
from ..worker.outcome import ReportedError
from ..worker.registry import TaskRegistry
from ..worker.runtime import Worker
from .shell import OUTPUT_TAIL, SHELL_TASK, ShellArgs, ShellResult, signed_by

__all__ = ["ShellRunner", "result_of", "run_command"]

log = logging.getLogger("tierq.api.shell")

#: How often the runner asks the master for a task's idempotency key before giving up.
CHECK_ATTEMPTS = 5


async def run_command(command: str, seconds: float, tail: int = OUTPUT_TAIL) -> ShellResult:
    """Run ``command`` with ``/bin/sh``; kill its whole process group after ``seconds`` (or
    when the attempt is cancelled)."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_shell(
        command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    chunks: deque[bytes] = deque()
    kept = 0

    async def drain() -> None:
        nonlocal kept
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            chunks.append(chunk)
            kept += len(chunk)
            while kept - len(chunks[0]) >= tail:
                kept -= len(chunks.popleft())

    timed_out = False
    try:
        async with asyncio.timeout(seconds):
            await asyncio.gather(drain(), proc.wait())
    except TimeoutError:
        timed_out = True
    finally:
        if proc.returncode is None:
            _kill_group(proc.pid)
            await proc.wait()
    output = b"".join(chunks)[-tail:].decode("utf-8", "replace")
    code = proc.returncode if proc.returncode is not None else -1
    return ShellResult(
        exit_code=code, output=output, timed_out=timed_out, duration=time.monotonic() - started
    )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def result_of(result: ShellResult) -> dict[str, JSONValue]:
    """The task's result for a command that exited 0; raises :class:`ReportedError` (exit
    code in the message, output tail as the traceback) for any other end."""
    if result.exit_code == 0 and not result.timed_out:
        return {"exit_code": 0, "output": result.output, "duration": result.duration}
    if result.timed_out:
        raise ReportedError(
            ErrorSummary(
                type="ShellTimeoutError",
                message=f"timed out; killed (exit code {result.exit_code})",
                traceback=result.output,
                timeout=True,
            )
        )
    raise ReportedError(
        ErrorSummary(
            type="ShellExitError",
            message=f"command failed with exit code {result.exit_code}",
            traceback=result.output,
        )
    )


class ShellRunner:
    """The ``shell`` worker inside the API process (see the module docstring).

    Shutdown: cancel :meth:`run`; running commands are killed (their whole process group) and
    their attempts left to the region's worker lease, which ends them as lost.
    """

    def __init__(
        self,
        engine: Engine,
        nats: NatsConfig,
        region: str,
        concurrency: int = 4,
        *,
        key: bytes,
    ) -> None:
        self.key = key
        self.master = MasterClient(engine, Subjects(nats.prefix))
        app = App()  # holds the definition only; the worker runs it
        app.task(name=SHELL_TASK)(self._shell)
        config = WorkerConfig(
            nats=nats,
            modules=(),
            region=region,
            concurrency=concurrency,
            worker_id=f"shell-{socket.gethostname()[:32]}-{secrets.token_hex(4)}",
            drain_grace=0.0,
        )
        self.worker = Worker(config, TaskRegistry(app.tasks, ()), engine, trusted=True)

    async def run(self) -> None:
        await self.worker.run()

    async def _shell(self, ctx: TaskContext, **kwargs: Any) -> dict[str, JSONValue]:
        try:
            args = msgspec.convert(kwargs, ShellArgs)
        except msgspec.ValidationError as exc:
            summary = ErrorSummary(type="InvalidShellArgs", message=str(exc), permanent=True)
            raise ReportedError(summary) from None
        await self._authorize(ctx.task_id, args)
        return result_of(await run_command(args.command, args.timeout))

    async def _authorize(self, task_id: str, args: ShellArgs) -> None:
        """Raise unless an admin submitted the task through the API (its signature matches)."""
        delay = 0.1
        for attempt in range(CHECK_ATTEMPTS):
            try:
                idem = (await self.master.get(task_id)).spec.idempotency_key
                break
            except TierqError as exc:
                if attempt == CHECK_ATTEMPTS - 1:
                    raise ReportedError(
                        ErrorSummary(
                            type="ShellCheckUnavailable",
                            message=f"could not check who submitted the task ({exc}); not run",
                        )
                    ) from None
                await asyncio.sleep(delay)
                delay *= 2
        if signed_by(self.key, args, idem):
            return
        log.error("shell runner: task %s was not submitted through the API; refused", task_id)
        raise ReportedError(
            ErrorSummary(
                type="UnauthorizedShellTask",
                message="not submitted through the API by an admin; not run",
                permanent=True,
            )
        )
