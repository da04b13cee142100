"""Measure the peers: ``python benchmarks/peers/run.py [--tasks 20000] [--rate 200] ...``.

Prints a Markdown table on stdout (progress goes to stderr) and optionally writes JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peers import PEERS, format_extras, format_table, run_peers


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM takes the same path as Ctrl-C, so every `finally` stops what it started.
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks per throughput run")
    parser.add_argument("--rate", type=float, default=200.0, help="latency run: tasks/s")
    parser.add_argument("--latency-tasks", type=int, default=2_000, help="latency run: tasks")
    parser.add_argument("--runs", type=int, default=3, help="throughput runs (median is kept)")
    parser.add_argument("--latency-runs", type=int, default=1, help="latency runs (median)")
    parser.add_argument(
        "--only", help=f"comma-separated subset of {','.join(p.name for p in PEERS)}"
    )
    parser.add_argument(
        "--min-idle",
        type=float,
        default=0.6,
        help="before each run, wait up to 60 s for this CPU idle fraction (0: don't wait)",
    )
    parser.add_argument("--bulk-runs", type=int, default=0, help="runs of each bulk shape")
    parser.add_argument("--w3-runs", type=int, default=0, help="runs of W3 (sleeping tasks)")
    parser.add_argument("--sleep-tasks", type=int, default=2_000, help="W3: tasks")
    parser.add_argument("--sleep", type=float, default=0.01, help="W3: seconds each task sleeps")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    only = [name.strip() for name in args.only.split(",")] if args.only else None

    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in background
    try:
        results = run_peers(
            args.tasks,
            args.rate,
            args.latency_tasks,
            only,
            runs=args.runs,
            latency_runs=args.latency_runs,
            min_idle=args.min_idle,
            bulk_runs=args.bulk_runs,
            sleep_runs=args.w3_runs,
            sleep_tasks=args.sleep_tasks,
            sleep_s=args.sleep,
        )
    except KeyboardInterrupt:
        print("interrupted; every process started was stopped", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(results), end="")
    if args.bulk_runs or args.w3_runs:
        print("\n" + format_extras(results), end="")
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=2))
    return 1 if any(r.notes.startswith("failed") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
