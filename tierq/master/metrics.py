"""Live figures the log does not keep: event rates and submit-to-start latency.

They are soft (a restarted master starts them afresh) and cheap: one bucket increment per
committed event, one sample per first start.
"""

from __future__ import annotations

import collections
import math

from ..protocol import LatencySummary, RateSecond

#: Seconds of history behind the rates.
RATE_WINDOW = 60
#: Starts behind the latency percentiles.
LATENCY_SAMPLES = 10_000
#: Seconds of starts behind the per-type latencies (what autoscalers read: recent only).
TYPE_LATENCY_WINDOW = 30.0


class LiveMetrics:
    """Per-second counts of event kinds over a sliding window, and recent start latencies."""

    def __init__(self, window: int = RATE_WINDOW, samples: int = LATENCY_SAMPLES) -> None:
        self.window = window
        self._buckets: collections.deque[tuple[int, collections.Counter[str]]] = collections.deque()
        self._latencies: collections.deque[float] = collections.deque(maxlen=samples)
        #: (started at, task type, latency) of recent first starts whose type is known.
        self._typed: collections.deque[tuple[float, str, float]] = collections.deque(maxlen=samples)
        self._since: float | None = None

    def observe(self, kind: str, at: float) -> None:
        second = math.floor(at)
        if self._since is None:
            self._since = at
        buckets = self._buckets
        if not buckets or buckets[-1][0] < second:
            buckets.append((second, collections.Counter()))
            while buckets and buckets[0][0] <= second - self.window:
                buckets.popleft()
        buckets[-1][1][kind] += 1

    def started(self, task_id: str, attempt: int, at: float, name: str | None = None) -> None:
        """A first attempt started: its latency since submission (the id carries that time),
        kept by task type too when ``name`` is given."""
        if attempt != 1:
            return
        try:
            submitted = int(task_id[:12], 16) / 1000.0
        except ValueError:
            return
        latency = max(0.0, at - submitted)
        self._latencies.append(latency)
        if name is not None:
            self._typed.append((at, name, latency))

    def latency_by_name(
        self, now: float, window: float = TYPE_LATENCY_WINDOW
    ) -> dict[str, LatencySummary]:
        """Per task type, the latency of its first starts in the last ``window`` seconds
        (types without a start then are left out: an old figure would mislead)."""
        typed = self._typed
        while typed and typed[0][0] < now - window:
            typed.popleft()
        by_name: dict[str, list[float]] = {}
        for _, name, latency in typed:
            by_name.setdefault(name, []).append(latency)
        return {name: _summary(values) for name, values in sorted(by_name.items())}

    def throughput(self, now: float) -> dict[str, float]:
        """Events per second by kind over the window (or since start, if shorter)."""
        if self._since is None:
            return {}
        span = max(1.0, min(float(self.window), now - self._since))
        oldest = math.floor(now) - self.window
        totals: collections.Counter[str] = collections.Counter()
        for second, counts in self._buckets:
            if second > oldest:
                totals.update(counts)
        return {kind: round(n / span, 3) for kind, n in sorted(totals.items())}

    def history(self, now: float) -> list[RateSecond]:
        """Events by kind in each whole second of the window before ``now``, oldest first
        (seconds without events have empty counts; none from before the first event)."""
        if self._since is None:
            return []
        end = math.floor(now)
        first = max(end - self.window + 1, math.floor(self._since))
        counts = {second: c for second, c in self._buckets if first <= second < end}
        return [
            RateSecond(at=second, counts=dict(counts[second]))
            if second in counts
            else RateSecond(at=second)
            for second in range(first, end)
        ]

    def latency(self) -> LatencySummary:
        return _summary(list(self._latencies))


def _summary(latencies: list[float]) -> LatencySummary:
    values = sorted(latencies)
    if not values:
        return LatencySummary(samples=0)

    def pct(p: float) -> float:
        return round(values[min(len(values) - 1, int(p * len(values)))] * 1000.0, 3)

    return LatencySummary(
        samples=len(values),
        p50_ms=pct(0.50),
        p90_ms=pct(0.90),
        p99_ms=pct(0.99),
        max_ms=round(values[-1] * 1000.0, 3),
    )
