"""API bodies to core structs."""

from __future__ import annotations

import msgspec
import pytest

from tierq.api.schema import ReportIn, TaskSpecIn, WorkflowIn
from tierq.core.model import FailurePolicy, OutcomeKind, RetryPolicy


def decode(body: bytes) -> TaskSpecIn:
    return msgspec.json.decode(body, type=TaskSpecIn)


def test_defaults_match_the_core() -> None:
    spec = decode(b'{"name": "add"}').to_core()
    assert spec.retry is RetryPolicy() or spec.retry == RetryPolicy()
    assert (spec.queue, spec.priority, spec.args, spec.kwargs) == ("default", 0, [], {})


@pytest.mark.parametrize(
    ("value", "epoch"),
    [
        ("1700000000", 1_700_000_000.0),
        ('"2023-11-14T22:13:20Z"', 1_700_000_000.0),
        ('"2023-11-15T00:13:20+02:00"', 1_700_000_000.0),
    ],
)
def test_times_as_numbers_or_rfc3339(value: str, epoch: float) -> None:
    spec = decode(f'{{"name": "x", "run_at": {value}}}'.encode()).to_core()
    assert spec.run_at == epoch


def test_everything_is_carried_over() -> None:
    body = {
        "name": "n",
        "args": [1, {"$result": "a"}],
        "kwargs": {"k": [1]},
        "priority": 7,
        "deadline": 5,
        "region": "eu",
        "labels": ["gpu"],
        "depends_on": ["x"],
        "retry": {"max_attempts": 2, "retry_on": ["IOError"]},
        "timeout": 3,
        "idempotency_key": "k",
        "queue": "q",
        "resource": "db:1",
    }
    spec = msgspec.convert(body, TaskSpecIn).to_core()
    assert spec.labels == ("gpu",) and spec.depends_on == ("x",)
    assert spec.retry == RetryPolicy(max_attempts=2, retry_on=("IOError",))
    assert (spec.deadline, spec.timeout, spec.resource) == (5.0, 3.0, "db:1")


def test_workflow_to_core() -> None:
    wf = msgspec.convert(
        {
            "nodes": [{"key": "a", "spec": {"name": "x"}}, {"key": "b", "spec": {"name": "y"}}],
            "edges": [["a", "b"]],
            "on_failure": "fail_workflow",
        },
        WorkflowIn,
    ).to_core()
    assert wf.edges == [("a", "b")]
    assert wf.on_failure is FailurePolicy.FAIL_WORKFLOW


def test_report_takes_the_worker_from_the_caller() -> None:
    report = msgspec.convert(
        {
            "started": [{"task_id": "t", "attempt": 1}],
            "outcomes": [
                {"task_id": "t", "attempt": 1, "kind": "succeeded", "result": 3},
                {"task_id": "u", "attempt": 2, "kind": "failed"},
            ],
        },
        ReportIn,
    )
    started, _, outcomes = report.to_core("w9")
    assert started[0].worker == "w9"
    assert [o.worker for o in outcomes] == ["w9", "w9"]
    assert outcomes[0].kind is OutcomeKind.SUCCEEDED and outcomes[0].result == 3
    assert outcomes[1].error is not None and outcomes[1].kind is OutcomeKind.FAILED


def test_workers_cannot_report_lost() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"outcomes": [{"task_id": "t", "attempt": 1, "kind": "lost"}]}, ReportIn)
