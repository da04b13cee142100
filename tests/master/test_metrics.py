"""The master's live figures: rates, their second-by-second history and start latency."""

from __future__ import annotations

from tierq.master.metrics import LiveMetrics
from tierq.protocol import RateSecond

T0 = 1_700_000_000.0


def test_history_is_every_whole_second_of_the_window() -> None:
    live = LiveMetrics(window=5)
    assert live.history(T0) == []
    live.observe("task_submitted", T0 + 0.2)
    live.observe("task_submitted", T0 + 0.7)
    live.observe("task_started", T0 + 2.5)
    live.observe("task_succeeded", T0 + 3.1)  # the current second: not whole yet
    # From the first event on (no zeros invented before it), up to the second before now.
    assert live.history(T0 + 3.4) == [
        RateSecond(at=int(T0), counts={"task_submitted": 2}),
        RateSecond(at=int(T0) + 1),
        RateSecond(at=int(T0) + 2, counts={"task_started": 1}),
    ]
    # Later: only the window's last seconds, quiet ones included.
    later = live.history(T0 + 7.9)
    assert [r.at for r in later] == [int(T0) + s for s in range(3, 7)]
    assert later[0].counts == {"task_succeeded": 1}
    assert all(not r.counts for r in later[1:])
    # The rates over the window agree with the history.
    assert live.throughput(T0 + 3.4) == {
        "task_started": round(1 / 3.2, 3),
        "task_submitted": round(2 / 3.2, 3),
        "task_succeeded": round(1 / 3.2, 3),
    }


def _id(submitted: float) -> str:
    """A task id carrying its submission time (milliseconds, 12 hex digits first)."""
    return f"{int(submitted * 1000):012x}" + "0" * 14


def test_latency_by_task_type_covers_recent_first_starts_only() -> None:
    live = LiveMetrics()
    live.started(_id(T0), 1, T0 + 1.0, "a")
    live.started(_id(T0), 1, T0 + 3.0, "a")
    live.started(_id(T0), 1, T0 + 5.0, "a")
    live.started(_id(T0), 2, T0 + 9.0, "a")  # a retry: not a submit-to-start figure
    live.started(_id(T0 + 10), 1, T0 + 10.5, "b")
    live.started(_id(T0), 1, T0 + 2.0)  # type not known: in the overall figure only
    by_name = live.latency_by_name(T0 + 20.0)
    assert by_name["a"].samples == 3 and by_name["a"].p50_ms == 3000.0
    assert by_name["b"].samples == 1 and by_name["b"].p50_ms == 500.0
    assert live.latency().samples == 5
    # 30 s on, a's starts are too old to say anything about now; b's last one still counts.
    assert list(live.latency_by_name(T0 + 36.0)) == ["b"]
    assert live.latency_by_name(T0 + 60.0) == {}
