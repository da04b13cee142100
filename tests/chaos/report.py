"""Write the figures of the last chaos run into ``docs/reliability.md``.

    python -m tests.chaos.report [--since ISO-TIME] [--write docs/reliability.md]

Reads ``artifacts/chaos.jsonl`` (one line per scenario run, appended by the chaos tests) and
keeps, per scenario, the newest run at or after ``--since``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START = "<!-- chaos:start -->"
END = "<!-- chaos:end -->"


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| scenario | acknowledged | runs | extra runs (counted) | retried tasks "
        "| failover | longest gap | stale reads | problems |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        failover = "—" if r["failover_s"] is None else f"{r['failover_s']:.2f} s"
        lines.append(
            f"| {r['scenario']} | {r['acknowledged']:,} | {r['executions']:,} "
            f"| {r['duplicates']} | {r.get('retried', '—')} | {failover} "
            f"| {r['max_ack_gap_s']:.2f} s | {r['stale_reads']} | {r['problems']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--since", default="")
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    newest: dict[str, dict[str, object]] = {}
    for line in (ROOT / "artifacts" / "chaos.jsonl").read_text().splitlines():
        row = json.loads(line)
        if str(row["when"]) >= args.since:
            newest[str(row["scenario"])] = row
    text = table(list(newest.values()))
    print(text)
    if args.write is not None:
        doc = args.write.read_text()
        head, rest = doc.split(START, 1)
        tail = rest.split(END, 1)[1]
        args.write.write_text(f"{head}{START}\n{text}\n{END}{tail}")


if __name__ == "__main__":
    main()
