"""Set up, measure and tear down each peer: venv, Redis, workers, producer.

Runs in any Python 3.11+ with the standard library only. For every measured run it starts a fresh
``redis-server`` on a free loopback port (persistence off), the peer's worker command(s) and the
producer (``driver.py``) in the peer's own virtualenv, each in its own process group, and stops all
of them in ``finally`` blocks, so a failure or Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cpu import OthersMeter, idle_share, wait_for_quiet
from .results import BulkResult, PeerResult
from .specs import PEERS, PeerSpec

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENVS = ROOT / ".venv-peers"
DRIVER_TIMEOUT = 900.0
PR_SET_PDEATHSIG = 1
QUIET_MAX_WAIT = 60.0


class SetupError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[peers] {msg}", file=sys.stderr, flush=True)


# -- virtualenvs ---------------------------------------------------------------------------------


def ensure_venv(spec: PeerSpec) -> Path:
    """Create ``.venv-peers/<name>`` with the pinned requirements unless it already has them.

    One venv per peer because their Redis clients conflict: arq needs redis<6, kombu (celery)
    needs redis>=6.4 and taskiq-redis needs redis>=8.
    """
    venv = VENVS / spec.name
    stamp = venv / ".requirements"
    wanted = "\n".join(spec.requirements)
    if stamp.exists() and stamp.read_text() == wanted:
        return venv
    VENVS.mkdir(exist_ok=True)
    (VENVS / ".gitignore").write_text("*\n")
    log(f"creating {venv.relative_to(ROOT)} with {' '.join(spec.requirements)}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *spec.requirements], check=True)
    stamp.write_text(wanted)
    return venv


# -- processes -----------------------------------------------------------------------------------


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it is still there after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; make sure no child of its group outlived it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


def _die_with_runner() -> None:
    """Runs in the child before exec: if the runner is SIGKILLed, the child gets a SIGTERM."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    cmd: list[str], env: dict[str, str], log_path: Path, stdout: int | None = None
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own process group (so ``stop`` reaches its children too)."""
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            cmd,
            cwd=HERE,
            env=env,
            stdout=log_file if stdout is None else stdout,
            stderr=log_file,
            start_new_session=True,
            preexec_fn=_die_with_runner,
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise SetupError(
            "redis-server not found. Install it with: apt-get install -y redis-server "
            "(the runner starts its own instance on a free loopback port; the system service "
            "is not used)"
        )
    return path


def wait_redis(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise SetupError(f"redis-server did not answer on 127.0.0.1:{port}")


@contextlib.contextmanager
def redis_server(log_dir: Path) -> Iterator[tuple[str, int]]:
    """A private Redis; yields its URL and its process group id."""
    port = free_port()
    cmd = [
        redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--daemonize", "no", "--dir", str(log_dir),
    ]  # fmt: skip
    proc = spawn(cmd, dict(os.environ), log_dir / "redis.log")
    try:
        wait_redis(port)
        yield f"redis://127.0.0.1:{port}/0", proc.pid
    finally:
        stop(proc)


@contextlib.contextmanager
def workers(
    cmds: tuple[str, ...], venv: Path, env: dict[str, str], log_dir: Path
) -> Iterator[list[int]]:
    """The peer's worker command(s); yields their process group ids."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, cmd in enumerate(cmds):
            program, *args = shlex.split(cmd.format(url=env["BENCH_REDIS_URL"]))
            argv = [str(venv / "bin" / program), *args]
            procs.append(spawn(argv, env, log_dir / f"worker{i}.log"))
        yield [proc.pid for proc in procs]
    finally:
        for proc in procs:
            stop(proc)


def measure(spec: PeerSpec, venv: Path, args: list[str], log_dir: Path) -> dict[str, Any]:
    """One measured run: fresh Redis, fresh workers, one producer; returns the producer's JSON.

    A ``sleep`` run (W3) starts ``spec.sleep_worker_cmds`` instead of ``spec.worker_cmds``.
    Adds ``others_cpu``: the share of the machine's CPU that other users took during the run.
    """
    meter = OthersMeter()
    cmds = spec.sleep_worker_cmds if args[0] == "sleep" else spec.worker_cmds
    with redis_server(log_dir) as (url, redis_pgid):
        env = {**os.environ, "BENCH_REDIS_URL": url, "PYTHONPATH": str(HERE)}
        with workers(cmds, venv, env, log_dir) as worker_pgids:
            cmd = [str(venv / "bin" / "python"), str(HERE / "driver.py"), spec.name, *args]
            proc = spawn(cmd, env, log_dir / "driver.log", stdout=subprocess.PIPE)
            try:
                out, _ = proc.communicate(timeout=DRIVER_TIMEOUT)
            finally:
                stop(proc)
            others = meter.share([redis_pgid, *worker_pgids])
    if proc.returncode != 0:
        tail = (log_dir / "driver.log").read_text()[-3000:]
        raise SetupError(f"{spec.name} {args[0]}: producer exited {proc.returncode}\n{tail}")
    answer: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    answer["others_cpu"] = others
    return answer


@dataclass
class _Peer:
    """One peer's state across the measuring rounds."""

    spec: PeerSpec
    log_dir: Path
    venv: Path | None = None
    answers: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    """Keyed by mode (``throughput``, ``latency``, ``sleep``), and ``bulk <shape>``."""
    error: str | None = None


_FAILURES = (SetupError, OSError, subprocess.SubprocessError, KeyError, ValueError)


def _measure_into(peer: _Peer, args: list[str], label: str, min_idle: float) -> None:
    name = peer.spec.name
    try:
        if peer.venv is None:
            peer.venv = ensure_venv(peer.spec)
        idle = wait_for_quiet(min_idle, QUIET_MAX_WAIT) if min_idle > 0 else idle_share()
        answer = measure(peer.spec, peer.venv, args, peer.log_dir)
    except _FAILURES as exc:
        peer.error = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        log(f"{name} failed (logs in {peer.log_dir}): {exc}")
        return
    answer["idle_before"] = idle
    key = f"bulk {args[2]}" if args[0] == "bulk" else args[0]
    log(f"{name}: {label} {key}: {answer}")
    peer.answers[key].append(answer)


def _summarize(peer: _Peer, tasks: int, rate: float) -> PeerResult:
    throughput, latency = peer.answers["throughput"], peer.answers["latency"]
    notes = [f"failed: {peer.error}"] if peer.error else []
    notes.append(peer.spec.config)
    for i, answer in enumerate(throughput):
        if answer["processes"] < 2:
            notes.append(f"run {i + 1}: tasks ran in only {answer['processes']} process")
    for answer in latency:
        if answer["achieved_rate"] < 0.95 * rate:
            notes.append(f"producer reached only {answer['achieved_rate']:.0f} tasks/s")
    rates = [a["tasks_per_s"] for a in throughput]
    if throughput:
        enqueue = statistics.median(tasks / a["enqueue_s"] for a in throughput)
        notes.append(f"enqueue phase alone {enqueue:,.0f}/s")
    answers = throughput + latency
    if answers:
        others = max(a["others_cpu"] for a in throughput) if throughput else 0.0
        notes.append(f"others' CPU use during its throughput runs up to {others:.0%}")
    first = next((a for runs in peer.answers.values() for a in runs), None)  # W3/bulk only too
    version = f"{first['version']} (redis-py {first['redis_py']})" if first else "?"
    bulk = [
        BulkResult(shape, label, _median([a["tasks_per_s"] for a in peer.answers[f"bulk {shape}"]]))
        for shape, label in peer.spec.bulk
    ]
    sleeps = [a["elapsed_s"] for a in peer.answers["sleep"]]
    return PeerResult(
        name=peer.spec.name,
        version=version,
        throughput_median=statistics.median(rates) if rates else None,
        throughput_min=min(rates, default=None),
        throughput_max=max(rates, default=None),
        p50_ms=statistics.median(a["p50_ms"] for a in latency) if latency else None,
        p99_ms=statistics.median(a["p99_ms"] for a in latency) if latency else None,
        call_p50_ms=statistics.median(a["call_p50_ms"] for a in latency) if latency else None,
        call_p99_ms=statistics.median(a["call_p99_ms"] for a in latency) if latency else None,
        notes="; ".join(notes),
        runs=rates,
        bulk=bulk,
        no_bulk=peer.spec.no_bulk,
        sleep_median=_median(sleeps),
        sleep_min=min(sleeps, default=None),
        sleep_max=max(sleeps, default=None),
        sleep_submit=_median([a["enqueue_s"] for a in peer.answers["sleep"]]),
        sleep_slots=peer.spec.sleep_slots,
    )


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _plans(spec: PeerSpec, args: list[str]) -> bool:
    """Whether this run is one the peer has (a bulk shape of its own, W3 workers)."""
    if args[0] == "bulk":
        return any(shape == args[2] for shape, _ in spec.bulk)
    return args[0] != "sleep" or bool(spec.sleep_worker_cmds)


def run_peers(
    tasks: int = 20_000,
    rate: float = 200.0,
    latency_tasks: int = 2_000,
    only: list[str] | None = None,
    *,
    runs: int = 3,
    latency_runs: int = 1,
    min_idle: float = 0.6,
    bulk_runs: int = 0,
    sleep_runs: int = 0,
    sleep_tasks: int = 2_000,
    sleep_s: float = 0.01,
) -> list[PeerResult]:
    """Measure each peer (all six unless ``only`` names some); a peer that fails gets a note.

    Throughput (one ``submit`` call per task) is the median of ``runs`` runs; p50/p99 are the
    medians over ``latency_runs``; ``bulk_runs`` runs of the peer's own bulk API, for the peers
    that have one, each shape in ``PeerSpec.bulk``; ``sleep_runs`` runs of W3 (``sleep_tasks``
    tasks that sleep ``sleep_s`` each, one submit call per task, on ``PeerSpec.sleep_worker_cmds``).
    Rounds go across the peers (run 1 of each, then run 2, ...), so a burst of load from other
    users of the machine lands on one run of several peers rather than on every run of one.
    Before each run it waits (at most a minute) until others leave ``min_idle`` of the CPU idle.
    """
    names = [spec.name for spec in PEERS]
    unknown = set(only or ()) - set(names)
    if unknown:
        raise ValueError(f"unknown peer(s) {sorted(unknown)}; known: {', '.join(names)}")
    if runs + latency_runs + bulk_runs + sleep_runs < 1:
        raise ValueError("nothing to measure: every number of runs is 0")
    redis_binary()  # fail early, with the install hint, before building any venv
    peers = [
        _Peer(spec, Path(tempfile.mkdtemp(prefix=f"tierq-peers-{spec.name}-")))
        for spec in PEERS
        if not only or spec.name in only
    ]
    plan = [["throughput", str(tasks)]] * runs
    plan += [["latency", str(latency_tasks), str(rate)]] * latency_runs
    plan += [["sleep", str(sleep_tasks), str(sleep_s)]] * sleep_runs
    shapes = sorted({shape for spec in PEERS for shape, _ in spec.bulk})
    plan += [["bulk", str(tasks), shape] for _ in range(bulk_runs) for shape in shapes]
    for i, args in enumerate(plan):
        for peer in peers:
            if peer.error is None and _plans(peer.spec, args):
                _measure_into(peer, args, f"round {i + 1}/{len(plan)}", min_idle)
    return [_summarize(peer, tasks, rate) for peer in peers]
