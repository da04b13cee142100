"""tierq.core's public names: sorted, importable, and the contract the services rely on."""

from __future__ import annotations

import inspect

import pytest

import tierq.core as core


def test_all_is_sorted_and_complete() -> None:
    names = core.__all__
    assert list(names) == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in names:
        assert hasattr(core, name), name


def test_scheduler_contract() -> None:
    methods = {
        "submit": ["specs", "now"],
        "submit_workflow": ["wf", "now"],
        "register_region": ["info", "now"],
        "region_heartbeat": ["name", "instance", "now"],
        "lease": ["region", "instance", "slots", "now", "types"],
        "report_started": ["items", "now"],
        "report_progress": ["items", "now"],
        "report": ["outcomes", "now"],
        "report_late": ["items", "now"],
        "cancel": ["task_id", "now"],
        "cancel_workflow": ["workflow_id", "now"],
        "reprioritize": ["task_id", "priority", "now"],
        "retry": ["task_id", "now"],
        "configure": ["settings", "now"],
        "tick": ["now"],
        "apply": ["event"],
        "get": ["task_id"],
        "workflow": ["workflow_id", "cursor", "limit"],
        "list_workflows": ["state", "limit", "cursor"],
        "statistics": ["now"],
    }
    for name, params in methods.items():
        sig = inspect.signature(getattr(core.SchedulerState, name))
        assert list(sig.parameters)[1:] == params, name
    assert callable(core.SchedulerState.restore)
    assert {"snapshot", "fingerprint", "next_wakeup", "list_tasks", "regions"} <= set(
        dir(core.SchedulerState)
    )


def test_indexed_priority_queue_is_deprecated_here() -> None:
    # Only tests and benchmarks used it: it lives on in tierq.core.pqueue (see CHANGELOG).
    from tierq.core.pqueue import IndexedPriorityQueue

    assert "IndexedPriorityQueue" not in core.__all__
    with pytest.warns(DeprecationWarning, match=r"tierq\.core\.pqueue"):
        assert core.IndexedPriorityQueue is IndexedPriorityQueue
    with pytest.raises(AttributeError):
        _ = core.NoSuchName  # type: ignore[attr-defined]
