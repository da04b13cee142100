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
