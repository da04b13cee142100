"""The record of one peer's figures and the Markdown table that lists them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BulkResult:
    """One of a peer's own bulk shapes in the batched table."""

    shape: str
    label: str
    median: float | None = None
    """Tasks/s, median of the bulk runs; None: not measured or failed."""


@dataclass
class PeerResult:
    name: str
    version: str
    throughput_median: float | None = None
    """Tasks/s, median of the throughput runs; min and max beside it."""
    throughput_min: float | None = None
    throughput_max: float | None = None
    p50_ms: float | None = None
    """Submit→start latency at a steady rate."""
    p99_ms: float | None = None
    call_p50_ms: float | None = None
    """The submit call's own duration in the latency run."""
    call_p99_ms: float | None = None
    notes: str = ""
    runs: list[float] = field(default_factory=list)
    """Tasks/s of every throughput run (one submit call per task)."""
    bulk: list[BulkResult] = field(default_factory=list)
    """One per bulk shape of the peer's own (empty: it has no bulk enqueue API)."""
    no_bulk: str = "no bulk enqueue API"
    """The batched table's note when ``bulk`` is empty."""
    sleep_median: float | None = None
    """W3: wall seconds for the sleeping tasks, median of the runs; min and max beside it."""
    sleep_min: float | None = None
    sleep_max: float | None = None
    sleep_submit: float | None = None
    """W3: the submit phase alone, wall seconds, median of the runs."""
    sleep_slots: str = ""
    """What W3's "2 processes x 8 slots" is for this peer."""


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_table(results: list[PeerResult]) -> str:
    lines = [
        "| system | version | tasks/s (median) | min-max | p50 ms | p99 ms | notes |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        spread = (
            "-"
            if r.throughput_min is None
            else f"{r.throughput_min:,.0f}\u2013{_num(r.throughput_max, ',.0f')}"
        )
        cells = [
            r.name,
            r.version,
            _num(r.throughput_median, ",.0f"),
            spread,
            _num(r.p50_ms, ".2f"),
            _num(r.p99_ms, ".2f"),
            r.notes.replace("|", "\\|"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_extras(results: list[PeerResult]) -> str:
    """W3 and the bulk shapes, one row each, for ``run.py --w3-runs/--bulk-runs``."""
    lines = ["| system | measure | setup | figure |", "|---|---|---|---:|"]
    for r in results:
        if r.sleep_median is not None:
            lines.append(f"| {r.name} | W3 wall s | {r.sleep_slots} | {r.sleep_median:.2f} |")
        for b in r.bulk:
            lines.append(f"| {r.name} | bulk tasks/s | {b.label} | {_num(b.median, ',.0f')} |")
    return "\n".join(lines) + "\n"
