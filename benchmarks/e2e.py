"""tierq and its peers, side by side in one run (the tables in docs/benchmarks.md).

Same workload and the **same submission shape** for everyone in the main table: 20,000 no-op
tasks from one producer that makes one submit call per task (tierq: an awaited ``submit``,
durable when it returns; the peers: their ``delay``/``send``/``enqueue``), to two worker
processes; tasks/s from the first submit to the last result (median of N runs, min-max beside
it); then submit→start latency at a steady 200 tasks/s, with the submit call's own duration.
tierq runs with its log on disk, twice: with the embedded server's defaults, and with
``sync_interval: always``. The peers run on Redis with persistence off (see
benchmarks/peers.md): a crash loses every queued task, so their figures are an upper bound.

W3, a second table: 2,000 tasks that each sleep 10 ms, one submit call per task as above, on
2 worker processes x 8 slots for every system, wall seconds from the first submit to the last
result beside the ideal (2,000 x 10 ms / 16 = 1.25 s). What a slot is differs: tierq 2 x
``tierq worker --concurrency 8`` (asyncio slots); celery 2 workers x ``--pool threads -c 8``;
dramatiq ``-p 2 -t 8`` (threads); huey 2 consumers x ``-w 8 -k thread``; arq 2 workers x
``max_jobs=8`` and taskiq ``--workers 2 --max-async-tasks 8`` (asyncio); rq runs one job per
worker process, so its 16 slots are 16 ``SimpleWorker`` processes. The table's second column
says it per row (``PeerSpec.sleep_slots``).

A third table has the batched shapes, each labelled: tierq with 1,000 tasks per call, tierq's
pipelined ``submit_nowait`` (one call per task, coalesced by the SDK, durable at ``flush``),
and the peers' own bulk APIs: celery ``group(...).apply_async()`` (one message per task) and
``chunks`` (100 calls per message, run in sequence by one worker process: another shape, so
labelled), dramatiq ``group(...).run()``, rq ``enqueue_many()``; huey, arq and taskiq have none.

    python benchmarks/e2e.py [--runs 2] [--bulk-runs 1] [--w3-runs N] [--sleep-tasks 2000]
        [--sleep 0.01] [--write docs/benchmarks.md] [--no-peers]

``--w3-runs`` defaults to ``--runs``; 0 leaves W3 out.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import throughput  # noqa: E402
from core_bench import machine, write_section  # noqa: E402
from peers import PeerResult, run_peers  # noqa: E402

START, END = "<!-- e2e:start -->", "<!-- e2e:end -->"

_DURABILITY = {
    "server defaults": "log on disk; fsync every 2 min (server default)",
    "sync_interval: always": "log on disk; fsync before every ack",
}
_REDIS = "Redis, persistence off: a crash loses every queued task"


#: What W3's "2 worker processes x 8 slots" is for tierq.
_TIERQ_SLOTS = "2 x `tierq worker --concurrency 8`: 8 asyncio slots per process"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def per_call_table(summaries: list[throughput.Summary], peers: list[PeerResult]) -> str:
    best_peer = max((p.throughput_median for p in peers if p.throughput_median), default=None)
    rows = [
        "| system | durability | tasks/s (median) | min-max | vs best peer "
        "| submit→start p50 / p99 ms | submit call p50 / p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        ratio = f"x{s.rate / best_peer:.2f}" if best_peer else ""
        rows.append(
            f"| **tierq** ({s.profile}) | {_DURABILITY[s.profile]} | {s.rate:,.0f} "
            f"| {s.rate_min:,.0f}-{s.rate_max:,.0f} | {ratio} | {s.p50_ms:.2f} / {s.p99_ms:.2f} "
            f"| {s.call_p50_ms:.2f} / {s.call_p99_ms:.2f} |"
        )
    for p in peers:
        med = p.throughput_median
        if med is None:
            rows.append(f"| {p.name} {p.version} | {_REDIS} | failed | | | | |")
            continue
        ratio = f"x{med / best_peer:.2f}" if best_peer else ""
        rows.append(
            f"| {p.name} {p.version} | {_REDIS} | {med:,.0f} "
            f"| {p.throughput_min:,.0f}-{p.throughput_max:,.0f} | {ratio} "
            f"| {_ms(p.p50_ms)} / {_ms(p.p99_ms)} | {_ms(p.call_p50_ms)} / {_ms(p.call_p99_ms)} |"
        )
    floors = [
        f"{s.profile}: {s.floor:,.0f} publishes/s, so tierq's awaited rate is "
        f"x{s.rate / s.floor:.2f} of it"
        for s in summaries
        if s.floor
    ]
    if floors:
        rows.append(
            "\nThe floor, measured in this run just before each tierq row: one JetStream publish "
            "of 100 bytes awaited for its ack at a time (nats-py, the SDK's client library), "
            "on a nats-server of the same profile with nothing else running. "
            + "; ".join(floors)
            + " (issue 14's target: x0.80 of the server-defaults floor)."
        )
    return "\n".join(rows)


def batched_table(batched: list[throughput.Summary], peers: list[PeerResult]) -> str:
    rows = [
        "| system | submission | durability | tasks/s (median) |",
        "|---|---|---|---:|",
    ]
    for s in batched:
        shape = (
            "`submit_nowait` per task, coalesced by the SDK; durable at `flush()`"
            if s.batch == 0
            else f"{s.batch:,} tasks per awaited call"
        )
        rows.append(
            f"| **tierq** ({s.profile}) | {shape} | {_DURABILITY[s.profile]} | {s.rate:,.0f} |"
        )
    for p in peers:
        if not p.bulk:
            rows.append(f"| {p.name} | not measured: {p.no_bulk} | | |")
        for b in p.bulk:
            rate = "failed" if b.median is None else f"{b.median:,.0f}"
            rows.append(f"| {p.name} | {b.label} | {_REDIS} | {rate} |")
    return "\n".join(rows)


def sleep_table(
    sleeps: list[throughput.SleepSummary], peers: list[PeerResult], ideal: float
) -> str:
    """W3: wall seconds, and how far each system is from the ideal (tasks x sleep / 16)."""
    rows = [
        "| system | 2 processes x 8 slots | durability | wall s (median) | min-max | x ideal "
        "| submit phase s |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for w in sleeps:
        rows.append(
            f"| **tierq** ({w.profile}) | {_TIERQ_SLOTS} | {_DURABILITY[w.profile]} "
            f"| {w.seconds:.2f} | {w.seconds_min:.2f}-{w.seconds_max:.2f} "
            f"| {_ratio(w.seconds, ideal)} | {w.submit_seconds:.2f} |"
        )
    for p in peers:
        if not p.sleep_slots:
            continue
        if p.sleep_median is None or p.sleep_min is None or p.sleep_max is None:
            rows.append(f"| {p.name} | {p.sleep_slots} | {_REDIS} | failed | | | |")
            continue
        rows.append(
            f"| {p.name} | {p.sleep_slots} | {_REDIS} | {p.sleep_median:.2f} "
            f"| {p.sleep_min:.2f}-{p.sleep_max:.2f} | {_ratio(p.sleep_median, ideal)} "
            f"| {_s(p.sleep_submit)} |"
        )
    return "\n".join(rows)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ratio(seconds: float, ideal: float) -> str:
    return f"x{seconds / ideal:.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--bulk-runs", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--latency-tasks", type=int, default=2000)
    parser.add_argument("--w3-runs", type=int, default=None, help="W3 runs (default: --runs)")
    parser.add_argument("--sleep-tasks", type=int, default=2000, help="W3: tasks")
    parser.add_argument("--sleep", type=float, default=0.01, help="W3: seconds each task sleeps")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--write", type=Path, default=None)
    parser.add_argument("--note", default="", help="a sentence on the machine's load")
    args = parser.parse_args(argv)
    throughput._install_uvloop()
    common = (args.tasks, args.rate, args.latency_tasks)
    per_call = throughput.measure_profiles(args.runs, *common, batch=1)
    batched: list[throughput.Summary] = []
    for batch in (1000, 0):
        if args.bulk_runs:
            batched += throughput.measure_profiles(
                args.bulk_runs, *common, batch=batch, profiles=(False,)
            )
    w3_runs = args.runs if args.w3_runs is None else args.w3_runs
    sleeps: list[throughput.SleepSummary] = []
    if w3_runs:
        sleeps = throughput.measure_sleep_profiles(w3_runs, args.sleep_tasks, args.sleep)
    peers: list[PeerResult] = []
    if not args.no_peers:
        peers = run_peers(
            *common,
            None,
            runs=args.runs,
            bulk_runs=args.bulk_runs,
            sleep_runs=w3_runs,
            sleep_tasks=args.sleep_tasks,
            sleep_s=args.sleep,
        )
    when = datetime.date.today().isoformat()
    text = (
        "## End to end: tierq and the peers, one run\n\n"
        f"`python benchmarks/e2e.py --runs {args.runs} --bulk-runs {args.bulk_runs} "
        f"--w3-runs {w3_runs}` on {when}, "
        f"{machine()}. {args.note}\n\n"
        f"**One submit call per task, for every system.** {args.tasks:,} no-op tasks, one "
        "producer, 2 worker processes; submit→start latency at a steady "
        f"{args.rate:.0f} tasks/s over {args.latency_tasks:,} tasks. tierq: nats-server, master, "
        "region and both workers are separate processes, the producer awaits each `submit` "
        "(durable in the master's file-backed log when it returns). Peers: Redis with "
        "persistence off (benchmarks/peers.md).\n\n"
        + per_call_table(per_call, peers)
        + _w3_section(args, w3_runs, sleeps, peers)
        + "\n\n**Batched submissions**, each labelled; not comparable with the tables above.\n\n"
        + batched_table(batched, peers)
    )
    print(text)
    if args.write:
        write_section(args.write, START, END, f"{START}\n{text}\n{END}")


def _w3_section(
    args: argparse.Namespace,
    w3_runs: int,
    sleeps: list[throughput.SleepSummary],
    peers: list[PeerResult],
) -> str:
    if not w3_runs:
        return ""
    ideal = args.sleep_tasks * args.sleep / 16
    return (
        f"\n\n**W3: {args.sleep_tasks:,} tasks that each sleep {args.sleep * 1000:g} ms**, "
        "one submit call per task as above, 2 worker processes x 8 slots for every system (the "
        "second column says what a slot is; a sleeping task holds its slot and no CPU); wall "
        "seconds from the first submit to the last result, and the ratio to the ideal "
        f"({args.sleep_tasks:,} x {args.sleep * 1000:g} ms / 16 slots = "
        f"{ideal:.2f} s); the submit phase alone beside it (no run is shorter). "
        f"Median of {w3_runs} run(s).\n\n" + sleep_table(sleeps, peers, ideal)
    )


if __name__ == "__main__":
    main()
