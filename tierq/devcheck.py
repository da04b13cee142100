"""What ``tierq dev`` checks before it starts anything: its task modules exist, its data
directory is not in use by another ``tierq dev``, and its ports are free.

Each refusal is one line that names what is in the way (a module, a pid, a port) and what to
do about it, instead of a stack trace from whatever happened to start first.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import ConflictError, InvalidRequestError

__all__ = ["check_modules", "check_ports", "data_dir_lock", "port_holder"]


def check_modules(modules: Sequence[str]) -> None:
    """Raise unless every module can be found (without importing it: no side effects)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # as the workers will: modules are found from here
    for name in modules:
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError) as exc:
            raise InvalidRequestError(
                f"cannot find task module {name!r} (looked from {cwd}): {exc}", field="modules"
            ) from None
        if found is None:
            raise InvalidRequestError(
                f"cannot find task module {name!r} (looked from {cwd}); check its spelling "
                "and run tierq dev from your project's root",
                field="modules",
            )


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on ``port`` (Linux: /proc/net/tcp and tcp6)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f, None)
            for line in f:
                cols = line.split()
                if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])
    return inodes


def port_holder(port: int) -> tuple[int, str] | None:
    """The pid and command line of the process listening on ``port``, if this host shows it
    (Linux, and a process this user may inspect); None otherwise."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not wanted:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    raw = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                    command = " ".join(raw.decode(errors="replace").split())
                    return int(entry.name), command[:120]
    return None


def _free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(host: str, ports: Sequence[tuple[int, str, str]]) -> None:
    """Raise for the first port in use; ``ports`` are (port, what, the flag that moves it)."""
    for port, what, flag in ports:
        if _free(host, port):
            continue
        holder = port_holder(port)
        who = f"pid {holder[0]} ({holder[1]})" if holder else "another process"
        raise ConflictError(
            f"port {port} ({what}) is in use by {who}: stop it, or choose another port with {flag}"
        )


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold ``data_dir/lock`` while ``tierq dev`` runs: two of them on one JetStream store
    would corrupt it. Raises naming the pid that holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "lock"
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock, as before
        yield
        return
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            pid = f.read().strip() or "unknown"
            raise ConflictError(
                f"{data_dir} is in use by another tierq dev (pid {pid}): stop it first, or "
                "give this one its own --data-dir"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)
