"""Prometheus metrics of the API process, plus the scheduler's figures at scrape time.

Each API process has its own registry (several apps in one test process must not collide in
the global one). ``/metrics`` refreshes the scheduler gauges from the master's statistics just
before rendering, so a scrape shows queue depths that KEDA or an HPA can act on; if the master
does not answer, ``tierq_master_up`` is 0 and the API's own metrics are still served.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE", "ApiMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ApiMetrics:
    """The API's counters and gauges, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "tierq_api_requests",
            "API operations by transport, operation and outcome (ok or an error code).",
            ["transport", "operation", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "tierq_api_request_duration_seconds",
            "Time to answer an API operation.",
            ["transport", "operation"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "tierq_api_requests_in_flight", "API operations being answered.", registry=r
        )
        self.tasks_submitted = Counter(
            "tierq_api_tasks_submitted",
            "Tasks accepted through the API.",
            ["transport"],
            registry=r,
        )
        self.rejected = Counter(
            "tierq_api_rejected",
            "Requests refused before reaching an operation (auth, size, parse).",
            ["transport", "reason"],
            registry=r,
        )
        self.watchers = Gauge(
            "tierq_api_event_watchers", "Open event feeds (SSE and gRPC).", registry=r
        )
        self.master_up = Gauge(
            "tierq_master_up", "1 if the master answered the last scrape.", registry=r
        )
        # The figures autoscalers and alerts want, under names of their own (KEDA, HPA).
        self.by_state = Gauge("tierq_tasks", "Tasks by state.", ["state"], registry=r)
        self.waiting = Gauge(
            "tierq_waiting_tasks",
            "Waiting tasks (pending, ready, failed) by queue.",
            ["queue"],
            registry=r,
        )
        self.waiting_band = Gauge(
            "tierq_waiting_tasks_by_band", "Waiting tasks by priority band.", ["band"], registry=r
        )
        self.held = Gauge(
            "tierq_held_tasks",
            "Tasks held (assigned or running) by region.",
            ["region"],
            registry=r,
        )
        self.ready_by_name = Gauge(
            "tierq_ready_tasks_by_name", "Ready tasks by task name.", ["name"], registry=r
        )
        self.queue_depth = Gauge("tierq_queue_depth", "Ready tasks.", registry=r)
        self.breaker_open = Gauge(
            "tierq_breaker_open", "1 while a circuit breaker is open.", ["key"], registry=r
        )
        self.scheduler = Gauge(
            "tierq_scheduler",
            "Other scheduler statistics from the master (one series per numeric figure).",
            ["figure", "key"],
            registry=r,
        )
        self._labelled = {
            "by_state": self.by_state,
            "waiting_by_queue": self.waiting,
            "waiting_by_band": self.waiting_band,
            "held_by_region": self.held,
            "ready_by_name": self.ready_by_name,
        }

    def observe(self, transport: str, operation: str, outcome: str, seconds: float) -> None:
        self.requests.labels(transport, operation, outcome).inc()
        self.latency.labels(transport, operation).observe(seconds)

    def update_scheduler(self, stats: Mapping[str, object] | None) -> None:
        """Set the scheduler gauges from the master's statistics (None: master down)."""
        if stats is None:
            self.master_up.set(0)
            return
        self.master_up.set(1)
        rest = dict(stats)
        rest.pop("now", None)
        for name, gauge in self._labelled.items():
            gauge.clear()
            values = rest.pop(name, None)
            if isinstance(values, Mapping):
                for key, value in values.items():
                    if isinstance(value, int | float):
                        gauge.labels(str(key)).set(value)
        depth = rest.pop("queue_depth", None)
        if isinstance(depth, int | float):
            self.queue_depth.set(depth)
        self.breaker_open.clear()
        breakers = rest.pop("breakers", None)
        for breaker in breakers if isinstance(breakers, list) else ():
            if isinstance(breaker, Mapping):
                self.breaker_open.labels(str(breaker.get("key"))).set(
                    1.0 if breaker.get("state") == "open" else 0.0
                )
        self.scheduler.clear()
        for figure, key, value in _flatten(rest):
            self.scheduler.labels(figure, key).set(value)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _flatten(stats: Mapping[str, object], prefix: str = "") -> list[tuple[str, str, float]]:
    """Numeric leaves of the statistics document as (figure, key, value).

    A mapping of numbers becomes one figure with a series per key (``queued_by_region`` →
    ``key="eu"``); nested records extend the figure name; lists and text are skipped.
    """
    out: list[tuple[str, str, float]] = []
    for name, value in stats.items():
        figure = f"{prefix}{name}"
        if isinstance(value, bool):
            out.append((figure, "", float(value)))
        elif isinstance(value, int | float):
            if math.isfinite(value):
                out.append((figure, "", float(value)))
        elif isinstance(value, Mapping):
            leaves = list(value.items())
            if leaves and all(
                isinstance(v, int | float) and not isinstance(v, bool) for _, v in leaves
            ):
                out += [
                    (figure, str(k), float(v))
                    for k, v in leaves
                    if isinstance(v, int | float) and math.isfinite(v)
                ]
            else:
                out += _flatten(value, f"{figure}.")
    return out
