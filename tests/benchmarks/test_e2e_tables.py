"""The end-to-end benchmark's plan and tables: W3 and the peers' own bulk shapes.

Pure checks, no processes: which runs each peer gets, that every shape and W3 task the specs
name exists in the peer's bench module, and what e2e.py prints for them.
"""

from __future__ import annotations

import ast
from pathlib import Path

from benchmarks import e2e, throughput
from benchmarks.peers import BulkResult, PeerResult
from benchmarks.peers.runner import _plans
from benchmarks.peers.specs import PEERS

PEERS_DIR = Path(e2e.__file__).resolve().parent / "peers"


def _functions(peer: str) -> set[str]:
    tree = ast.parse((PEERS_DIR / f"bench_{peer}.py").read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }


def test_every_peer_runs_w3_on_16_slots_and_has_the_calls_its_spec_names() -> None:
    for spec in PEERS:
        defined = _functions(spec.name)
        assert {"submit", "submit_sleep", "submit_many", "wait"} <= defined, spec.name
        assert spec.sleep_worker_cmds and spec.sleep_slots, spec.name
        for shape, label in spec.bulk:
            assert f"bulk_{shape}" in defined and label, (spec.name, shape)
        if spec.name == "arq":  # arq reads only the settings class's own attributes
            assert "SleepWorkerSettings" in defined
    shapes = {spec.name: [shape for shape, _ in spec.bulk] for spec in PEERS}
    assert shapes["celery"] == ["group", "chunks"]
    assert shapes["dramatiq"] == ["group"]
    assert shapes["rq"] == ["enqueue_many"]


def test_a_bulk_run_goes_only_to_the_peers_with_that_shape() -> None:
    by_name = {spec.name: spec for spec in PEERS}
    group = ["bulk", "2000", "group"]
    assert [s.name for s in PEERS if _plans(s, group)] == ["celery", "dramatiq"]
    assert not _plans(by_name["huey"], ["bulk", "2000", "chunks"])
    assert _plans(by_name["huey"], ["sleep", "2000", "0.01"])
    assert _plans(by_name["huey"], ["throughput", "2000"])


def test_the_batched_table_labels_each_shape_and_says_why_a_peer_has_none() -> None:
    celery = PeerResult(
        "celery",
        "5.7.0",
        bulk=[
            BulkResult("group", "`group` label", 401.2),
            BulkResult("chunks", "`chunks` x", None),
        ],
    )
    huey = PeerResult("huey", "3.5.4", no_bulk="no bulk enqueue API (`task.map()` is a loop)")
    table = e2e.batched_table([], [celery, huey])
    assert "| celery | `group` label | " in table and "| 401 |" in table
    assert "| celery | `chunks` x | " in table and "| failed |" in table
    assert "| huey | not measured: no bulk enqueue API (`task.map()` is a loop) |" in table
    assert "not run yet" not in table


def test_the_w3_table_gives_wall_seconds_and_the_ratio_to_the_ideal() -> None:
    tierq = throughput.SleepSummary("server defaults", 2.5, 2.4, 2.6, 2000, 0.01, 16, 2.1)
    rq = PeerResult(
        "rq",
        "3.0.0",
        sleep_median=1.875,
        sleep_min=1.8,
        sleep_max=1.9,
        sleep_submit=0.5,
        sleep_slots="16 procs",
    )
    failed = PeerResult("arq", "0.28.0", sleep_slots="2 x max_jobs=8")
    table = e2e.sleep_table([tierq], [rq, failed], ideal=1.25)
    assert (
        "| **tierq** (server defaults) |" in table
        and "| 2.50 | 2.40-2.60 | x2.00 | 2.10 |" in table
    )
    assert "| rq | 16 procs |" in table and "| 1.88 | 1.80-1.90 | x1.50 | 0.50 |" in table
    assert "| arq | 2 x max_jobs=8 | " in table and "| failed |" in table
