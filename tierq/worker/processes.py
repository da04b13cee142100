"""The process pool: sync task functions run in child processes (``--pool process``).

Not ``concurrent.futures.ProcessPoolExecutor``: that ships Python objects, cannot stop
one busy child, and breaks the whole pool when a child dies. Here each child is a plain
``python -m tierq.worker.child`` over pipes with MessagePack frames; a child that ignores its
cancel flag past ``kill_grace`` (a timeout, a cancel) is killed and replaced, alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import Any

from ..client import TaskContext
from ..core.model import ErrorSummary, LeasedTask
from ..errors import InvalidRequestError
from .child import MAX_FRAME, decode_body, encode_frame
from .outcome import ReportedError

__all__ = ["ChildTaskError", "ProcessPool"]

log = logging.getLogger("tierq.worker")


class ChildTaskError(ReportedError):
    """An attempt failed in a child process; ``summary`` is what to report."""


class _Child:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self.stdin = proc.stdin
        self.stdout = proc.stdout
        #: The pipe broke or the child died: never hand it another task.
        self.broken = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return not self.broken and self.proc.returncode is None

    async def send(self, message: list[Any]) -> None:
        try:
            self.stdin.write(encode_frame(message))
            await self.stdin.drain()
        except (ConnectionError, OSError, RuntimeError):
            self.broken = True
            raise ChildTaskError(_died(self)) from None

    async def recv(self) -> list[Any] | None:
        try:
            header = await self.stdout.readexactly(4)
            size = int.from_bytes(header, "big")
            if size > MAX_FRAME:
                raise ValueError(f"child sent a frame of {size} bytes")
            return decode_body(await self.stdout.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError):
            self.broken = True
            return None

    async def kill(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.proc.wait()


class ProcessPool:
    """``size`` child processes that import ``modules`` and run their sync tasks."""

    def __init__(self, modules: tuple[str, ...], size: int, *, kill_grace: float = 2.0) -> None:
        self.modules = modules
        self.size = size
        self.kill_grace = kill_grace
        self._idle: asyncio.Queue[_Child] = asyncio.Queue()
        self._children: set[_Child] = set()
        self._spawning: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self) -> None:
        """Start every child and wait until each has loaded the task modules.

        Raises:
            InvalidRequestError: the modules do not load in a child.
        """
        children = await asyncio.gather(
            *(self._spawn() for _ in range(self.size)), return_exceptions=True
        )
        errors = [c for c in children if isinstance(c, BaseException)]
        for child in children:
            if isinstance(child, _Child):
                self._idle.put_nowait(child)
        if errors:
            await self.close()
            raise errors[0]

    async def run(self, leased: LeasedTask, ctx: TaskContext) -> Any:
        """Run one attempt in an idle child; cancelling this call cancels the attempt."""
        child = await self._idle.get()
        reusable = True
        try:
            meta = {
                "worker": ctx.worker,
                "workflow_id": leased.workflow_id,
                "parent_results": leased.parent_results,
            }
            await child.send(
                ["run", leased.id, leased.attempt, leased.name, leased.args, leased.kwargs, meta]
            )
            exchange = asyncio.ensure_future(self._exchange(child, ctx))
            try:
                return await asyncio.shield(exchange)
            except asyncio.CancelledError:
                reusable = await self._stop(child, exchange)
                raise
        finally:
            if reusable and child.alive and not self._closed:
                self._idle.put_nowait(child)
            else:
                self._replace(child)

    async def close(self) -> None:
        """Stop every child: end of input first, then kill what is still running."""
        self._closed = True
        for task in self._spawning:
            task.cancel()
        for child in list(self._children):
            with contextlib.suppress(Exception):
                child.stdin.close()
        for child in list(self._children):
            try:
                async with asyncio.timeout(2.0):
                    await child.proc.wait()
            except TimeoutError:
                await child.kill()
        self._children.clear()

    async def _spawn(self) -> _Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tierq.worker.child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        child = _Child(proc)
        self._children.add(child)
        await child.send(["init", list(sys.path), list(self.modules)])
        first = await child.recv()
        if first is None or first[0] != "ready":
            await child.kill()
            self._children.discard(child)
            why = first[1] if first and first[0] == "fatal" else "it exited while starting"
            raise InvalidRequestError(
                f"process pool child could not load {', '.join(self.modules)}: {why}",
                field="modules",
            )
        return child

    async def _exchange(self, child: _Child, ctx: TaskContext) -> Any:
        while True:
            frame = await child.recv()
            if frame is None:
                raise ChildTaskError(_died(child))
            match frame:
                case ["progress", fraction, message]:
                    with contextlib.suppress(ValueError, TypeError):
                        ctx.progress(fraction, message)
                case ["ok", result]:
                    return result
                case ["err", kind, message, tb]:
                    raise ChildTaskError(ErrorSummary(type=kind, message=message, traceback=tb))
                case _:
                    raise ChildTaskError(
                        ErrorSummary(type="ProtocolError", message=f"bad frame {frame[:1]!r}")
                    )

    async def _stop(self, child: _Child, exchange: asyncio.Future[Any]) -> bool:
        """Ask the child to stop; kill it if it has not within the grace. True if reusable."""
        with contextlib.suppress(ConnectionError, OSError):
            await child.send(["cancel"])
        # asyncio.wait neither cancels the exchange on timeout nor swallows our own cancel.
        await asyncio.wait((exchange,), timeout=self.kill_grace)
        if exchange.done():
            if not exchange.cancelled():
                exchange.exception()  # the cancelled attempt's own end is of no interest
            return child.alive
        exchange.cancel()
        log.warning("killing pool process %d: its task ignored cancellation", child.pid)
        await child.kill()
        return False

    def _replace(self, child: _Child) -> None:
        self._children.discard(child)
        if self._closed:
            return
        task = asyncio.get_running_loop().create_task(self._respawn(child))
        self._spawning.add(task)
        task.add_done_callback(self._spawning.discard)

    async def _respawn(self, old: _Child) -> None:
        await old.kill()
        delay = 0.1
        while not self._closed:
            try:
                self._idle.put_nowait(await self._spawn())
                return
            except InvalidRequestError as exc:
                log.error("cannot replace pool process: %s; retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


def _died(child: _Child) -> ErrorSummary:
    code = child.proc.returncode
    return ErrorSummary(
        type="WorkerProcessDied",
        message=f"pool process {child.pid} exited"
        + (f" with code {code}" if code is not None else "")
        + " while running the task",
    )
