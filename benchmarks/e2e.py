"""tierq and its peers, side by side in one run (the table in docs/benchmarks.md).

Same workload for everyone: 20,000 no-op tasks from one producer to two worker processes,
tasks/s from the first submit to the last result (median of N runs, min-max beside it); then
submit→start latency at a steady 200 tasks/s. tierq runs with its log on disk, twice: with the
embedded server's defaults, and with ``sync_interval: always``. The peers run on Redis with
persistence off (see benchmarks/peers.md), so their figures are an upper bound.

    python benchmarks/e2e.py [--runs 3] [--write docs/benchmarks.md] [--no-peers]
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


def table(summaries: list[throughput.Summary], peers: list[PeerResult]) -> str:
    best_peer = max(
        (p.throughput_median for p in peers if p.throughput_median),
        default=None,
    )
    rows = [
        "| system | submission | tasks/s (median) | min-max | vs best peer | p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        # Not like for like: tierq's producer sends 1,000 tasks per call, the peers' one. No
        # ratio is printed for it; a per-call comparison is not measured yet.
        rows.append(
            f"| **tierq** ({s.profile}) | batches of 1,000 per call | {s.rate:,.0f} "
            f"| {s.rate_min:,.0f}-{s.rate_max:,.0f} | not comparable | {s.p50_ms:.2f} "
            f"| {s.p99_ms:.2f} |"
        )
    for p in peers:
        med = p.throughput_median
        if med is None:
            rows.append(f"| {p.name} {p.version} | one task per call | failed | | | | |")
            continue
        ratio = f"x{med / best_peer:.2f}" if best_peer else ""
        rows.append(
            f"| {p.name} {p.version} | one task per call | {med:,.0f} "
            f"| {p.throughput_min:,.0f}-{p.throughput_max:,.0f} | {ratio} "
            f"| {p.p50_ms:.2f} | {p.p99_ms:.2f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--latency-tasks", type=int, default=2000)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args(argv)
    throughput._install_uvloop()
    summaries = throughput.measure_profiles(args.runs, args.tasks, args.rate, args.latency_tasks)
    peers: list[PeerResult] = []
    if not args.no_peers:
        peers = list(run_peers(args.tasks, args.rate, args.latency_tasks, None, runs=args.runs))
    when = datetime.date.today().isoformat()
    text = (
        "## End to end: tierq and the peers, one run\n\n"
        f"`python benchmarks/e2e.py --runs {args.runs}` on {when}, {machine()}. "
        f"{args.tasks:,} no-op tasks, one producer, 2 worker processes; latency at a steady "
        f"{args.rate:.0f} tasks/s over {args.latency_tasks:,} tasks. tierq: nats-server, master, "
        "region and both workers are separate processes, the master's log is a file-backed "
        "JetStream stream. Peers: Redis with persistence off (benchmarks/peers.md).\n\n"
        + table(summaries, peers)
    )
    print(text)
    if args.write:
        write_section(args.write, START, END, f"{START}\n{text}\n{END}")


if __name__ == "__main__":
    main()
