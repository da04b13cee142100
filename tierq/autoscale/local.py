"""The ``local`` provider: ``tierq worker`` processes on this host.

It starts workers, stops one by draining it (SIGTERM: the worker takes nothing new, finishes
what runs, reports and exits 0), and replaces one that ended without being told to. Each
worker it starts gets a file in the state directory (``<id>.json``: pid and the process's
start time from ``/proc``), so a restarted provider finds its workers again; the start time
tells a worker from an unrelated process that was given the same pid later.

Workers run in their own session: a Ctrl-C in the provider's terminal does not reach them,
the provider drains them itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import subprocess
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from ..config import NatsConfig
from ..protocol import WorkerView
from ..worker.spawn import worker_command, worker_env

__all__ = ["LocalProvider", "LocalWorker", "process_start_time"]

log = logging.getLogger("tierq.autoscale")

#: Workers left running by :meth:`LocalProvider.release`: kept referenced so that their
#: process objects are not collected while the processes run (which would warn).
_RELEASED: list[subprocess.Popen[bytes]] = []


def process_start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, ``/proc/<pid>/stat`` field 22),
    or None when there is no such process (or it is a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


class _Record(msgspec.Struct, frozen=True, kw_only=True):
    """A worker's file in the state directory."""

    worker_id: str
    pid: int
    start_time: int


@dataclass(slots=True)
class LocalWorker:
    """One worker process the provider started (or found again after its own restart)."""

    id: str
    pid: int
    start_time: int
    #: The process object when it is our child; None for a worker found again.
    proc: subprocess.Popen[bytes] | None = None
    #: SIGTERM sent: it is draining and must not be replaced.
    stopping: bool = False
    returncode: int | None = None

    def alive(self) -> bool:
        if self.proc is not None:
            if self.proc.poll() is None:
                return True
            self.returncode = self.proc.returncode
            return False
        if process_start_time(self.pid) == self.start_time:
            return True
        # Found again but still our child (this process started it before): collect its
        # exit status, which also frees its process table entry.
        with contextlib.suppress(ChildProcessError):
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                _settle_released(pid, self.returncode)
        return False

    def terminate(self) -> None:
        """SIGTERM once: a second one would cut the drain short (the worker takes it as
        "stop now"), or kill a worker already past its drain with the default action."""
        if self.stopping:
            return
        self.stopping = True
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


def _settle_released(pid: int, code: int) -> None:
    """A released worker's exit status was collected by its pid: give it to its process
    object and let that go (it would otherwise say at exit that the process still runs)."""
    for proc in _RELEASED:
        if proc.pid == pid and proc.returncode is None:
            proc.returncode = code
    _RELEASED[:] = [proc for proc in _RELEASED if proc.returncode is None]


@dataclass(slots=True)
class LocalProvider:
    """Runs ``desired`` worker processes of ``modules`` for one region."""

    nats: NatsConfig
    nats_url: str
    region: str
    modules: Sequence[str]
    state_dir: Path
    concurrency: int = 8
    pool: str = "async"
    drain_grace: float = 30.0
    workers: dict[str, LocalWorker] = field(default_factory=dict)
    #: Workers that ended without being told to (each was replaced).
    restarts: int = 0
    #: The latest workers that ended: (id, exit code or None when not our child).
    exits: deque[tuple[str, int | None]] = field(default_factory=lambda: deque(maxlen=50))
    name: str = "local"

    def __post_init__(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)

    def adopt(self) -> list[str]:
        """Find the workers a previous run of the provider started; drop stale files."""
        found: list[str] = []
        for path in sorted(self.state_dir.glob("*.json")):
            try:
                record = msgspec.json.decode(path.read_bytes(), type=_Record)
            except (OSError, msgspec.DecodeError, msgspec.ValidationError):
                path.unlink(missing_ok=True)
                continue
            worker = LocalWorker(record.worker_id, record.pid, record.start_time)
            if worker.alive():
                self.workers[worker.id] = worker
                found.append(worker.id)
            else:
                path.unlink(missing_ok=True)
        if found:
            log.info("autoscaler %s: found %d running workers", self.region, len(found))
        return found

    def live(self) -> list[LocalWorker]:
        """Workers running and not told to stop."""
        return [w for w in self.workers.values() if not w.stopping]

    def draining(self) -> list[LocalWorker]:
        return [w for w in self.workers.values() if w.stopping]

    def reap(self) -> list[LocalWorker]:
        """Forget the workers that ended; returns those that ended without being told to."""
        crashed: list[LocalWorker] = []
        for worker in list(self.workers.values()):
            if worker.alive():
                continue
            del self.workers[worker.id]
            (self.state_dir / f"{worker.id}.json").unlink(missing_ok=True)
            self.exits.append((worker.id, worker.returncode))
            if not worker.stopping:
                crashed.append(worker)
                self.restarts += 1
                log.warning(
                    "autoscaler %s: worker %s ended (exit %s) without being told to; replacing it",
                    self.region,
                    worker.id,
                    worker.returncode,
                )
        return crashed

    def scale(self, desired: int, views: dict[str, WorkerView]) -> None:
        """Start or drain workers until ``desired`` are live; drains only idle ones.

        ``views`` are the region's workers as the master last heard of them, by id: a worker
        with attempts running there is never chosen.
        """
        live = self.live()
        for _ in range(desired - len(live)):
            self.start()
        if len(live) <= desired:
            return
        # Registered and idle only: one still starting is left to register first (a later
        # check drains it), so that every drained worker ends the way a drain ends.
        idle = [w for w in live if w.id in views and views[w.id].running == 0]
        for worker in idle[: len(live) - desired]:
            log.info("autoscaler %s: draining worker %s", self.region, worker.id)
            worker.terminate()

    def start(self) -> LocalWorker:
        worker_id = f"autoscale-{self.region}-{secrets.token_hex(4)}"
        command = worker_command(
            self.modules,
            nats_url=self.nats_url,
            prefix=self.nats.prefix,
            region=self.region,
            concurrency=self.concurrency,
            pool=self.pool,
            extra=("--worker-id", worker_id, "--drain-grace", str(self.drain_grace)),
        )
        proc = subprocess.Popen(command, env=worker_env(self.nats), start_new_session=True)
        start_time = process_start_time(proc.pid) or 0
        worker = LocalWorker(worker_id, proc.pid, start_time, proc)
        self.workers[worker_id] = worker
        record = _Record(worker_id=worker_id, pid=proc.pid, start_time=start_time)
        path = self.state_dir / f"{worker_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(msgspec.json.encode(record))
        tmp.replace(path)
        log.info("autoscaler %s: started worker %s (pid %d)", self.region, worker_id, proc.pid)
        return worker

    def release(self) -> None:
        """Leave every worker running, for a later provider to find again."""
        for worker in self.workers.values():
            if worker.proc is not None:
                _RELEASED.append(worker.proc)
                worker.proc = None
        self.workers.clear()

    def stop_all(self) -> None:
        """Drain every worker (they exit once their running attempts are done)."""
        for worker in self.workers.values():
            worker.terminate()
