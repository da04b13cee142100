"""End-to-end throughput and latency: client -> master -> region -> 2 worker processes.

Every process is separate and talks only over NATS, as in production: one nats-server (the
embedded one), one master, one region, two workers (``--concurrency`` slots each, async pool),
and this process as the producer. Durability is on: the master's log is a file-backed
JetStream stream. Run twice: with the server's default ``sync_interval`` and with
``sync_interval: always`` (fsync before every ack).

    python benchmarks/throughput.py [--tasks 20000] [--rate 200] [--latency-tasks 2000]
        [--batch 1000|1|0] [--via intake|master]
    python benchmarks/throughput.py --w3 [--sleep-tasks 2000] [--sleep 0.01] [--w3-slots 8]

W3 (``measure_sleep``): tasks that each sleep 10 ms, one awaited ``App.submit`` per task, two
workers with 8 slots each (``tierq worker --concurrency 8``, async pool); wall seconds from the
first submit to the last success (the ideal for 2,000 tasks on 16 slots is 1.25 s).

The latency run and ``--batch 1`` use the SDK as an application does: one awaited
``App.submit`` per task, through the durable intake unless ``--via master``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tierq  # noqa: E402
from tierq.config import NatsConfig  # noqa: E402
from tierq.core.model import TaskSpec  # noqa: E402
from tierq.engine import EmbeddedNats, Message, Subjects, connect  # noqa: E402
from tierq.rpc import MasterClient  # noqa: E402


@dataclass
class Result:
    profile: str
    tasks: int
    seconds: float
    rate: float
    p50_ms: float
    p99_ms: float
    latency_rate: float
    #: The awaited submit call's own duration in the latency run.
    call_p50_ms: float = 0.0
    call_p99_ms: float = 0.0
    #: How an awaited ``App.submit`` travelled: "intake" (the default) or "master".
    via: str = "intake"


class Stack:
    """nats-server + master + region + 2 workers, each its own process."""

    def __init__(self, sync_always: bool, concurrency: int, prefetch: int) -> None:
        self.dir = tempfile.mkdtemp(prefix="tierq-bench-")
        self.nats = EmbeddedNats(self.dir, sync_always=sync_always)
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.procs: list[subprocess.Popen[bytes]] = []

    def _spawn(self, *args: str) -> None:
        """Start ``tierq <args>`` the way an operator would (the CLI picks uvloop)."""
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        cmd = [sys.executable, "-m", "tierq", "--log-level", "warning", *args]
        self.procs.append(subprocess.Popen([*cmd, "--nats", self.nats.url], env=env, cwd=ROOT))

    async def start(self) -> None:
        await self.nats.astart()
        self._spawn("master")
        self._spawn("region", "--prefetch", str(self.prefetch))
        for _ in range(2):
            self._spawn("worker", "benchmarks.noop_tasks", "--concurrency", str(self.concurrency))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.nats.stop()


async def _warm_up(client: MasterClient) -> None:
    """Wait until master, region and both workers answer by running a few tasks."""
    deadline = time.monotonic() + 30
    while True:
        try:
            ids = await client.submit([TaskSpec(name="noop", args=[i]) for i in range(50)])
            tasks = await client.wait(ids, timeout=10)
            if all(t.state.value == "succeeded" for t in tasks):
                return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def measure(
    sync_always: bool,
    n_tasks: int,
    rate: float,
    latency_tasks: int,
    concurrency: int,
    prefetch: int,
    batch: int,
    via: str = "intake",
) -> Result:
    stack = Stack(sync_always, concurrency, prefetch)
    await stack.start()
    try:
        nats = NatsConfig(servers=(stack.nats.url,))
        engine = await connect(nats.connect_options(name="bench-producer"))
        subjects = Subjects()
        client = MasterClient(engine, subjects, timeout=30)
        # The SDK as an application uses it: an awaited submit per task (batch 1, latency).
        app = tierq.App(stack.nats.url, request_timeout=30, intake=via == "intake")
        await _warm_up(client)
        await asyncio.sleep(1.0)  # let the warm-up's stragglers settle

        # -- throughput -------------------------------------------------------------------
        done = asyncio.Event()
        finished = 0
        results: dict[str, object] = {}
        decoder = msgspec.json.Decoder()

        async def on_succeeded(msg: Message) -> None:
            # Record every success: one can arrive before its submit's reply does.
            nonlocal finished
            ev = decoder.decode(msg.data)
            results[ev["id"]] = ev.get("result")
            finished += 1
            if expected and finished >= expected[0] and wanted <= results.keys():
                done.set()

        expected: list[int] = []

        wanted: set[str] = set()
        sub = await engine.subscribe(subjects.event("task_succeeded"), cb=on_succeeded)
        t0 = time.perf_counter()
        if batch == 0:  # pipelined: one submit_nowait per task, batched by the SDK
            pending = [app.submit_nowait("noop", i) for i in range(n_tasks)]
            await app.flush()
            wanted.update(p.id for p in pending)
        elif batch == 1:
            submit = app.submit
            for i in range(n_tasks):
                wanted.add((await submit("noop", i)).id)
        else:
            for start in range(0, n_tasks, batch):
                specs = [
                    TaskSpec(name="noop", args=[i])
                    for i in range(start, min(n_tasks, start + batch))
                ]
                wanted.update(await client.submit(specs))
        expected.append(n_tasks)
        if not wanted <= results.keys():
            await asyncio.wait_for(done.wait(), timeout=600)
        seconds = time.perf_counter() - t0

        # -- latency at a steady rate ---------------------------------------------------------
        finished = 0
        done.clear()
        results.clear()
        wanted.clear()
        expected[:] = []
        submitted_at: dict[str, float] = {}
        calls: list[float] = []
        interval = 1.0 / rate
        next_at = time.perf_counter()
        tasks = []

        async def submit_one(i: int) -> None:
            at = time.time()
            c0 = time.perf_counter()
            task_id = (await app.submit("stamp", i)).id
            calls.append((time.perf_counter() - c0) * 1000)
            submitted_at[task_id] = at
            wanted.add(task_id)

        for i in range(latency_tasks):
            tasks.append(asyncio.create_task(submit_one(i)))
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        await asyncio.gather(*tasks)
        expected.append(latency_tasks)
        if not wanted <= results.keys():
            await asyncio.wait_for(done.wait(), timeout=120)
        latencies = sorted(
            (float(results[tid]) - submitted_at[tid]) * 1000  # type: ignore[arg-type]
            for tid in submitted_at
        )
        calls.sort()
        await sub.unsubscribe()
        await app.close()
        await engine.close()
        profile = "sync_interval: always" if sync_always else "server defaults"
        return Result(
            profile=profile,
            tasks=n_tasks,
            seconds=seconds,
            rate=n_tasks / seconds,
            p50_ms=statistics.median(latencies),
            p99_ms=latencies[int(len(latencies) * 0.99) - 1],
            latency_rate=rate,
            call_p50_ms=statistics.median(calls),
            call_p99_ms=calls[int(len(calls) * 0.99) - 1],
            via=via,
        )
    finally:
        stack.stop()


async def measure_sleep(
    sync_always: bool,
    n_tasks: int = 2000,
    sleep_s: float = 0.01,
    concurrency: int = 8,
    prefetch: int = 256,
    via: str = "intake",
) -> tuple[float, float]:
    """W3: wall seconds for ``n_tasks`` tasks that each sleep ``sleep_s``, and of those the
    seconds the submits took (no run can be shorter than its submit phase).

    One awaited ``App.submit`` per task (the shape of W1), two workers with ``concurrency``
    slots each; the clock runs from the first submit until the last task's success event.
    """
    stack = Stack(sync_always, concurrency, prefetch)
    await stack.start()
    try:
        nats = NatsConfig(servers=(stack.nats.url,))
        engine = await connect(nats.connect_options(name="bench-producer"))
        subjects = Subjects()
        app = tierq.App(stack.nats.url, request_timeout=30, intake=via == "intake")
        await _warm_up(MasterClient(engine, subjects, timeout=30))
        await asyncio.sleep(1.0)  # let the warm-up's stragglers settle
        succeeded: set[str] = set()
        remaining: set[str] | None = None  # known once every task is submitted
        done = asyncio.Event()
        decoder = msgspec.json.Decoder()

        async def on_succeeded(msg: Message) -> None:
            # A success can arrive before its submit's reply: keep every id until the end.
            task_id = decoder.decode(msg.data)["id"]
            succeeded.add(task_id)
            if remaining is not None:
                remaining.discard(task_id)
                if not remaining:
                    done.set()

        sub = await engine.subscribe(subjects.event("task_succeeded"), cb=on_succeeded)
        t0 = time.perf_counter()
        wanted = [(await app.submit("nap", sleep_s)).id for _ in range(n_tasks)]
        submit_seconds = time.perf_counter() - t0
        remaining = set(wanted) - succeeded
        if remaining:
            async with asyncio.timeout(600):
                await done.wait()
        seconds = time.perf_counter() - t0
        await sub.unsubscribe()
        await app.close()
        await engine.close()
        return seconds, submit_seconds
    finally:
        stack.stop()


@dataclass
class SleepSummary:
    """W3 for one durability profile: wall seconds, median of the runs, with the spread."""

    profile: str
    seconds: float
    seconds_min: float
    seconds_max: float
    tasks: int
    sleep_s: float
    slots: int
    submit_seconds: float = 0.0
    """The submit phase alone, median of the runs."""


def measure_sleep_profiles(
    runs: int,
    tasks: int = 2000,
    sleep_s: float = 0.01,
    concurrency: int = 8,
    profiles: tuple[bool, ...] = (False, True),
    via: str = "intake",
) -> list[SleepSummary]:
    """W3 (``measure_sleep``) ``runs`` times for each durability profile."""
    out: list[SleepSummary] = []
    for sync_always in profiles:
        profile = "sync_interval: always" if sync_always else "server defaults"
        runs_ = [
            asyncio.run(measure_sleep(sync_always, tasks, sleep_s, concurrency, via=via))
            for _ in range(runs)
        ]
        walls = sorted(wall for wall, _ in runs_)
        shown = ", ".join(f"{wall:.2f} s (submits {sub:.2f} s)" for wall, sub in runs_)
        print(f"  {profile}: W3 {shown}", flush=True)
        out.append(
            SleepSummary(
                profile=profile,
                seconds=statistics.median(walls),
                seconds_min=walls[0],
                seconds_max=walls[-1],
                tasks=tasks,
                sleep_s=sleep_s,
                slots=2 * concurrency,
                submit_seconds=statistics.median(sub for _, sub in runs_),
            )
        )
    return out


async def measure_floor(sync_always: bool, seconds: float = 3.0, passes: int = 2) -> float:
    """Issue 14's floor for an awaited submit: one JetStream publish (100 bytes) awaited for
    its ack at a time, from nats-py as the SDK uses it, on a nats-server of the same profile
    with nothing else running; calls/s, median of ``passes`` of ``seconds``."""
    server = EmbeddedNats(tempfile.mkdtemp(prefix="tierq-floor-"), sync_always=sync_always)
    await server.astart()
    try:
        engine = await connect(NatsConfig(servers=(server.url,)).connect_options(name="floor"))
        js = engine.js
        await js.add_stream(name="FLOOR", subjects=["floor.>"])
        payload = b"x" * 100
        rates = []
        for _ in range(passes):
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                await js.publish("floor.x", payload)
                n += 1
            rates.append(n / (time.perf_counter() - t0))
        await engine.close()
        return statistics.median(rates)
    finally:
        server.stop()


@dataclass
class Summary:
    """Median of the runs of one profile, with the spread."""

    profile: str
    rate: float
    rate_min: float
    rate_max: float
    p50_ms: float
    p99_ms: float
    runs: list[Result]
    batch: int = 1000
    call_p50_ms: float = 0.0
    call_p99_ms: float = 0.0
    via: str = "intake"
    #: The awaited JetStream publish of the same profile, measured just before (0: not).
    floor: float = 0.0


def measure_profiles(
    runs: int,
    tasks: int = 20_000,
    rate: float = 200.0,
    latency_tasks: int = 2000,
    concurrency: int = 64,
    prefetch: int = 256,
    batch: int = 1000,
    profiles: tuple[bool, ...] = (False, True),
    via: str = "intake",
) -> list[Summary]:
    """Run each durability profile ``runs`` times; medians of throughput and latency."""
    out: list[Summary] = []
    for sync_always in profiles:
        floor = asyncio.run(measure_floor(sync_always)) if batch == 1 else 0.0
        if floor:
            print(f"  floor: awaited JetStream publish {floor:,.0f}/s", flush=True)
        results = [
            asyncio.run(
                measure(sync_always, tasks, rate, latency_tasks, concurrency, prefetch, batch, via)
            )
            for _ in range(runs)
        ]
        for r in results:
            print(
                f"  {r.profile}: {r.rate:,.0f} tasks/s ({r.seconds:.2f} s); "
                f"latency p50 {r.p50_ms:.2f} ms p99 {r.p99_ms:.2f} ms",
                flush=True,
            )
        rates = sorted(r.rate for r in results)
        out.append(
            Summary(
                profile=results[0].profile,
                rate=statistics.median(rates),
                rate_min=rates[0],
                rate_max=rates[-1],
                p50_ms=statistics.median(r.p50_ms for r in results),
                p99_ms=statistics.median(r.p99_ms for r in results),
                runs=results,
                batch=batch,
                call_p50_ms=statistics.median(r.call_p50_ms for r in results),
                call_p99_ms=statistics.median(r.call_p99_ms for r in results),
                via=via,
                floor=floor,
            )
        )
    return out


def main(argv: list[str] | None = None) -> list[Summary]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--latency-tasks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--prefetch", type=int, default=256)
    parser.add_argument(
        "--batch",
        type=int,
        default=1000,
        help="tasks per submit call; 1 = one awaited submit per task; 0 = submit_nowait per "
        "task (pipelined by the SDK)",
    )
    parser.add_argument(
        "--via",
        choices=["intake", "master"],
        default="intake",
        help="how an awaited App.submit travels: the durable intake (default) or a request "
        "to the master (App(intake=False))",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["default", "always"], default=None)
    parser.add_argument(
        "--w3",
        action="store_true",
        help="run W3 instead: --sleep-tasks tasks that each sleep --sleep s, one awaited submit "
        "per task, 2 workers x --w3-slots slots; prints wall seconds",
    )
    parser.add_argument("--sleep-tasks", type=int, default=2000)
    parser.add_argument("--sleep", type=float, default=0.01)
    parser.add_argument("--w3-slots", type=int, default=8)
    args = parser.parse_args(argv)
    _install_uvloop()
    profiles = (False, True) if args.only is None else (args.only == "always",)
    if args.w3:
        for w in measure_sleep_profiles(
            args.runs, args.sleep_tasks, args.sleep, args.w3_slots, profiles, args.via
        ):
            print(
                f"{w.profile}: W3 {w.tasks:,} x {w.sleep_s * 1000:g} ms on {w.slots} slots: "
                f"median {w.seconds:.2f} s (min {w.seconds_min:.2f}, max {w.seconds_max:.2f}); "
                f"submit phase {w.submit_seconds:.2f} s",
                flush=True,
            )
        return []
    summaries = measure_profiles(
        args.runs,
        args.tasks,
        args.rate,
        args.latency_tasks,
        args.concurrency,
        args.prefetch,
        args.batch,
        profiles,
        args.via,
    )
    for s in summaries:
        print(
            f"{s.profile}: median {s.rate:,.0f} tasks/s (min {s.rate_min:,.0f}, "
            f"max {s.rate_max:,.0f}); latency p50 {s.p50_ms:.2f} ms, p99 {s.p99_ms:.2f} ms",
            flush=True,
        )
    return summaries


def _install_uvloop() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass


if __name__ == "__main__":
    main()
