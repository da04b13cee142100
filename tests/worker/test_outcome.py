from __future__ import annotations

import datetime as dt

from tierq.core.model import OutcomeKind
from tierq.core.retry import error_type_name
from tierq.worker.outcome import lost, succeeded, summarize, timed_out


class CustomError(Exception):
    pass


def test_error_type_names() -> None:
    assert error_type_name(ValueError) == "ValueError"
    assert error_type_name(CustomError) == f"{__name__}.CustomError"


def test_summary_keeps_type_message_and_traceback() -> None:
    try:
        raise CustomError("went wrong")
    except CustomError as exc:
        summary = summarize(exc)
    assert summary.type.endswith("CustomError")
    assert summary.message == "went wrong"
    assert summary.traceback is not None and "went wrong" in summary.traceback


def test_empty_message_falls_back_to_repr() -> None:
    assert summarize(KeyError()).message == "KeyError()"


def test_non_json_result_becomes_a_clear_failure() -> None:
    outcome = succeeded("t", 1, "w", {"when": dt.datetime(2026, 1, 1)})
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.error is not None
    assert outcome.error.type == "TypeError"
    assert "result['when']" in outcome.error.message


def test_json_result_succeeds() -> None:
    outcome = succeeded("t", 1, "w", {"rows": [1, 2]})
    assert outcome.kind is OutcomeKind.SUCCEEDED
    assert outcome.result == {"rows": [1, 2]}


def test_timeout_and_lost_outcomes() -> None:
    out = timed_out("t", 3, "w", 1.5)
    assert out.error is not None and out.error.timeout and out.error.type == "TaskTimeoutError"
    assert "1.5 s" in out.error.message
    gone = lost("t", 3, "w", "shutdown")
    assert gone.kind is OutcomeKind.LOST and gone.error is not None and gone.error.lost
