"""A process-pool child: runs sync task functions for its parent worker.

Started as ``python -m tierq.worker.child`` with pipes on stdin/stdout. Frames are a 4-byte
big-endian length and a MessagePack array (plain data only), and a result that is
not a plain value fails here, where the traceback is. The child moves its own stdout out of
the way at start (task ``print`` goes to stderr) so task output cannot corrupt the frames.

Parent -> child: ``["init", sys_path, modules]``, ``["run", task_id, attempt, name, args,
kwargs, meta]``, ``["cancel"]``.
Child -> parent: ``["ready", names]`` or ``["fatal", message]``, then per run any number of
``["progress", fraction, message]`` and one ``["ok", result]`` or ``["err", type, message,
traceback]``.
"""

from __future__ import annotations

import os
import queue
import signal
import struct
import sys
import threading
from typing import IO, Any

import msgspec

from ..client import TaskContext
from ..errors import TierqError
from .outcome import summarize
from .registry import TaskRegistry, load_tasks
from .values import NotJSONError, check_json

__all__ = ["encode_frame", "main", "read_frame"]

_HEADER = struct.Struct(">I")
#: Frames above this are refused (the parent's report limit is far lower anyway).
MAX_FRAME = 256 * 1024 * 1024

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def encode_frame(message: list[Any]) -> bytes:
    body = _encoder.encode(message)
    return _HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> list[Any]:
    value = _decoder.decode(body)
    if not isinstance(value, list) or not value:
        raise ValueError("malformed frame")
    return value


def read_frame(stream: IO[bytes]) -> list[Any] | None:
    """The next frame from a blocking stream, or None at end of stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes is over the limit")
    body = stream.read(size)
    if len(body) < size:
        return None
    return decode_body(body)


class _Channel:
    """The child's side of the pipe: one writer lock, since progress may come from threads."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._lock = threading.Lock()

    def send(self, message: list[Any]) -> None:
        frame = encode_frame(message)
        with self._lock:
            self._out.write(frame)
            self._out.flush()


def main() -> None:
    # The parent decides when a child stops (end of input, or a kill past the cancel grace).
    # Ctrl-C reaches every process of the terminal's group and a service manager may signal
    # the whole group: either would kill a task the draining parent means to let finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Keep the real stdout for frames; fd 1 (and print) now go to stderr.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    channel = _Channel(out)
    inp = sys.stdin.buffer
    init = read_frame(inp)
    if init is None or init[0] != "init":
        return
    _, sys_path, modules = init
    sys.path[:] = list(sys_path)
    try:
        registry = load_tasks(modules)
    except TierqError as exc:
        channel.send(["fatal", str(exc)])
        return
    channel.send(["ready", registry.names])

    runs: queue.Queue[list[Any] | None] = queue.Queue()
    current: list[TaskContext | None] = [None]

    def listen() -> None:
        # The main thread is busy running tasks, so control frames are read here.
        while True:
            frame = read_frame(inp)
            if frame is None:
                runs.put(None)
                return
            if frame[0] == "cancel":
                ctx = current[0]
                if ctx is not None:
                    ctx.cancel()
            elif frame[0] == "run":
                runs.put(frame)

    threading.Thread(target=listen, name="tierq-child-listen", daemon=True).start()
    while (job := runs.get()) is not None:
        _run(job, registry, channel, current)


def _run(
    job: list[Any], registry: TaskRegistry, channel: _Channel, current: list[TaskContext | None]
) -> None:
    """Run one ``["run", ...]`` frame and send its ``ok`` or ``err``; ``current`` holds its
    context meanwhile, for the listener to cancel."""
    _, task_id, attempt, name, args, kwargs, meta = job

    def progress(fraction: float, message: str | None) -> None:
        channel.send(["progress", fraction, message])

    ctx = TaskContext(
        task_id=task_id,
        attempt=attempt,
        name=name,
        worker=meta.get("worker", ""),
        workflow_id=meta.get("workflow_id"),
        parent_results=meta.get("parent_results") or {},
        on_progress=progress,
    )
    current[0] = ctx
    task = registry.get(name)
    try:
        if task is None:
            channel.send(["err", "UnknownTaskError", f"no task named {name!r} here", None])
            return
        result = task.invoke(args, kwargs, ctx)
        check_json(result, "result")
        channel.send(["ok", result])
    except NotJSONError as exc:
        channel.send(["err", "TypeError", f"{exc}; a task must return JSON-compatible data", None])
    except (Exception, SystemExit) as exc:
        summary = summarize(exc)
        channel.send(["err", summary.type, summary.message, summary.traceback])
    finally:
        current[0] = None


if __name__ == "__main__":
    main()
