"""Benchmarks of the pure scheduling core (no I/O): the numbers behind docs/benchmarks.md.

    python benchmarks/core_bench.py [--n 1000000] [--dag 100000] [--runs 3]
                                    [--write docs/benchmarks.md]

What it measures, each side by side with a plain ``heapq`` of tuples in the same run:

* raw queue: N pushes then N pops through ``IndexedPriorityQueue``;
* raw queue: N priority updates on a queue holding N entries;
* ``SchedulerState``: N submits (batches of 1000) then leases (1000 slots) until empty, with
  every event built and applied as the master does;
* ``SchedulerState.reprioritize`` N times on a state holding N READY tasks;
* a workflow of ``--dag`` nodes submitted and run to completion (lease + report success);
* bytes per queued task (tracemalloc) with N tasks queued.

Times are CPU seconds of this process (``time.process_time``): the benchmark machine is shared,
and wall-clock figures there measure the neighbours as much as the code. Figures are medians of
``--runs`` runs where a run is cheap enough to repeat.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import heapq
import os
import platform
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tierq.core import (  # noqa: E402
    AdmissionSettings,
    Outcome,
    OutcomeKind,
    RegionInfo,
    SchedulerState,
    Settings,
    TaskSpec,
    WorkflowNode,
    WorkflowSpec,
)
from tierq.core.pqueue import IndexedPriorityQueue  # noqa: E402

START = "<!-- core_bench:start -->"
END = "<!-- core_bench:end -->"
T0 = 1_700_000_000.0
BATCH = 1000


@dataclass
class Row:
    what: str
    value: float
    unit: str
    baseline: float | None = None
    target: str = ""
    ok: bool | None = None

    def cells(self) -> list[str]:
        base = f"{self.baseline:,.0f}" if self.baseline is not None else ""
        verdict = "" if self.ok is None else ("met" if self.ok else "**missed**")
        return [
            self.what,
            f"{self.value:,.2f}" if self.value < 100 else f"{self.value:,.0f}",
            self.unit,
            base,
            self.target,
            verdict,
        ]


def cpu(fn: Callable[[], object]) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def median(runs: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(runs))


def big_settings(n: int) -> Settings:
    limit = max(2 * n, 1_000_000)
    return Settings(
        admission=AdmissionSettings(max_queued=limit, max_queued_per_queue=limit),
        max_workflow_nodes=max(n, 100_000),
    )


# ------------------------------------------------------------------ raw queue


def queue_push_pop(n: int, prios: list[int]) -> tuple[float, float, float]:
    """Seconds for n push + n pop: (IndexedPriorityQueue, heapq of tuples, heapq of the packed
    ints IndexedPriorityQueue stores, without its index)."""
    ids = [f"{i:020x}" for i in range(n)]

    def ours() -> None:
        q = IndexedPriorityQueue()
        push = q.push
        for i in range(n):
            push(ids[i], prios[i], 0.0, i)
        pop = q.pop
        for _ in range(n):
            pop()

    def plain() -> None:
        h: list[tuple[int, int, str]] = []
        for i in range(n):
            heapq.heappush(h, (-prios[i], i, ids[i]))
        for _ in range(n):
            heapq.heappop(h)

    def packed() -> None:
        h: list[int] = []
        for i in range(n):
            heapq.heappush(h, (-prios[i] << 60) + i)
        for _ in range(n):
            heapq.heappop(h)

    return cpu(ours), cpu(plain), cpu(packed)


def queue_updates(n: int, prios: list[int], rng: random.Random) -> tuple[float, float]:
    """Seconds for n updates on a queue of n: (ours, heapq lazy re-push reference)."""
    ids = [f"{i:020x}" for i in range(n)]
    targets = [ids[rng.randrange(n)] for _ in range(n)]
    new = [rng.randrange(-1000, 1001) for _ in range(n)]
    q = IndexedPriorityQueue()
    for i in range(n):
        q.push(ids[i], prios[i], 0.0, i)

    def ours() -> None:
        update = q.update
        for i in range(n):
            update(targets[i], new[i])

    # The plain-heapq way to "update": push a new tuple and remember which one is live.
    h = [(-prios[i], i, ids[i]) for i in range(n)]
    heapq.heapify(h)
    live = {ids[i]: i for i in range(n)}

    def plain() -> None:
        seq = n
        for i in range(n):
            live[targets[i]] = seq
            heapq.heappush(h, (-new[i], seq, targets[i]))
            seq += 1

    return cpu(ours), cpu(plain)


# ------------------------------------------------------------ SchedulerState


def state_submit_lease(n: int, prios: list[int]) -> tuple[float, float]:
    """CPU seconds for n submits and for leasing them all."""
    gc.collect()
    st = SchedulerState(big_settings(n), random.Random(1))
    st.register_region(RegionInfo(name="eu", instance="i", task_types=("job",)), T0)
    specs = [TaskSpec(name="job", priority=prios[i], args=[i]) for i in range(n)]

    def submit() -> None:
        for k in range(0, n, BATCH):
            st.submit(specs[k : k + BATCH], T0)

    def lease() -> None:
        got = 0
        while got < n:
            _, leased = st.lease("eu", "i", BATCH, T0 + 1)
            got += len(leased)

    return cpu(submit), cpu(lease)


def state_reprioritize(n: int, prios: list[int], rng: random.Random) -> float:
    st = SchedulerState(big_settings(n), random.Random(1))
    ids: list[str] = []
    for k in range(0, n, BATCH):
        ids += st.submit([TaskSpec(name="job", priority=p) for p in prios[k : k + BATCH]], T0)[1]
    targets = [ids[rng.randrange(n)] for _ in range(n)]
    new = [rng.randrange(-1000, 1001) for _ in range(n)]

    def run() -> None:
        re = st.reprioritize
        for i in range(n):
            re(targets[i], new[i], T0)

    return cpu(run)


def dag_spec(n: int, rng: random.Random) -> WorkflowSpec:
    """A random layered DAG: every node after the first 100 depends on up to 3 earlier ones."""
    nodes = [WorkflowNode(key=f"n{i}", spec=TaskSpec(name="step")) for i in range(n)]
    edges = []
    for i in range(100, n):
        for p in {rng.randrange(max(0, i - 1000), i) for _ in range(rng.randrange(1, 4))}:
            edges.append((f"n{p}", f"n{i}"))
    return WorkflowSpec(nodes=nodes, edges=edges)


def dag_run(n: int, rng: random.Random) -> tuple[float, float, int]:
    """(submit seconds, run-to-completion seconds, lease rounds) for an n-node workflow."""
    wf = dag_spec(n, rng)
    st = SchedulerState(big_settings(n), random.Random(1))
    st.register_region(RegionInfo(name="eu", instance="i", task_types=("step",)), T0)
    holder: dict[str, str] = {}

    def submit() -> None:
        _, wf_id, _ = st.submit_workflow(wf, T0)
        holder["id"] = wf_id

    rounds = 0

    def run() -> None:
        nonlocal rounds
        while True:
            _, leased = st.lease("eu", "i", 10_000, T0 + 1)
            if not leased:
                break
            rounds += 1
            st.report(
                [
                    Outcome(task_id=t.id, attempt=t.attempt, kind=OutcomeKind.SUCCEEDED, result=1)
                    for t in leased
                ],
                T0 + 1,
            )

    submit_s = cpu(submit)
    run_s = cpu(run)
    assert st.workflow(holder["id"]).state == "succeeded"
    return submit_s, run_s, rounds


def bytes_per_queued(n: int, prios: list[int]) -> tuple[float, float]:
    """(SchedulerState bytes per READY task incl. its spec, heapq tuple bytes per entry)."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    st = SchedulerState(big_settings(n), random.Random(1))
    for k in range(0, n, BATCH):
        st.submit([TaskSpec(name="job", priority=p, args=[k]) for p in prios[k : k + BATCH]], T0)
    gc.collect()
    ours = (tracemalloc.get_traced_memory()[0] - base) / n
    del st
    gc.collect()
    base = tracemalloc.get_traced_memory()[0]
    h = [(-prios[i], i, f"{i:020x}") for i in range(n)]
    heapq.heapify(h)
    plain = (tracemalloc.get_traced_memory()[0] - base) / n
    del h
    tracemalloc.stop()
    return ours, plain


# ----------------------------------------------------------------------- main


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def run(n: int, dag: int, runs: int) -> list[Row]:
    rng = random.Random(42)
    prios = [rng.randrange(-1000, 1001) for _ in range(n)]
    rows: list[Row] = []

    pp = [queue_push_pop(n, prios) for _ in range(runs)]
    ours = statistics.median(p[0] for p in pp)
    plain = statistics.median(p[1] for p in pp)
    packed = statistics.median(p[2] for p in pp)
    rows.append(Row("queue push+pop (IndexedPriorityQueue)", n / ours, "tasks/s", n / plain))
    rows.append(Row("heapq push+pop of packed int keys (no index)", n / packed, "tasks/s"))

    up = [queue_updates(n, prios, rng) for _ in range(runs)]
    ours = statistics.median(u[0] for u in up)
    plain = statistics.median(u[1] for u in up)
    ok = n / ours >= 200_000
    rows.append(Row("queue priority updates", n / ours, "updates/s", n / plain, ">= 200,000", ok))

    sl = [state_submit_lease(n, prios) for _ in range(runs)]
    sub = statistics.median(s[0] for s in sl)
    lea = statistics.median(s[1] for s in sl)
    both = statistics.median(s[0] + s[1] for s in sl)
    rows.append(Row("SchedulerState submit", n / sub, "tasks/s"))
    rows.append(Row("SchedulerState lease", n / lea, "tasks/s"))
    rows.append(
        Row(
            "SchedulerState submit + lease",
            n / both,
            "tasks/s",
            n / statistics.median(p[1] for p in pp),
            ">= 150,000",
            n / both >= 150_000,
        )
    )

    rp = median(runs, lambda: state_reprioritize(n, prios, rng))
    rows.append(
        Row("SchedulerState reprioritize", n / rp, "updates/s", None, ">= 200,000", n / rp >= 2e5)
    )

    dags = [dag_run(dag, rng) for _ in range(runs)]
    dsub = statistics.median(d[0] for d in dags)
    drun = statistics.median(d[1] for d in dags)
    rows.append(Row(f"{dag:,}-node DAG: submit + validate", dsub, "s"))
    rows.append(Row(f"{dag:,}-node DAG: lease + report to completion", drun, "s"))
    rows.append(Row(f"{dag:,}-node DAG: total", dsub + drun, "s", None, "< 2 s", dsub + drun < 2.0))

    ours_b, plain_b = bytes_per_queued(n, prios)
    rows.append(
        Row("bytes per queued task (incl. spec)", ours_b, "B", plain_b, "<= 1024", ours_b <= 1024)
    )
    return rows


def table(rows: list[Row]) -> str:
    head = ["measure", "value", "unit", "plain heapq", "target", ""]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def section(rows: list[Row], n: int, dag: int, runs: int) -> str:
    today = _dt.date.today().isoformat()
    return "\n".join(
        [
            START,
            "## Core (pure scheduling, no I/O)",
            "",
            f"`python benchmarks/core_bench.py --n {n} --dag {dag} --runs {runs}` on {today}, "
            f"{machine()}. CPU seconds of the benchmark process, median of {runs} runs; the "
            "machine was shared with other work, so treat the last digit as noise. "
            '"plain heapq" is the same operation on a `heapq` of `(priority, seq, id)` tuples '
            "in the same run (for updates: pushing a replacement tuple, the lazy-deletion way).",
            "",
            table(rows),
            END,
        ]
    )


def write_section(path: Path, start: str, end: str, block: str) -> None:
    """Put ``block`` (which begins with ``start`` and ends with ``end``) in place of the
    section between those markers in ``path``, or append it. The other benchmarks use it."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in old and end in old:
        head, rest = old.split(start, 1)
        tail = rest.split(end, 1)[1]
        new = head + block + tail
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dag", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", type=Path, default=None, help="update this markdown file")
    args = parser.parse_args(argv)
    rows = run(args.n, args.dag, args.runs)
    print(table(rows))
    if args.write is not None:
        write_section(args.write, START, END, section(rows, args.n, args.dag, args.runs))
        print(f"wrote {args.write}")
    return rows


if __name__ == "__main__":
    main()
