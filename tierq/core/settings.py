"""Scheduler settings: one frozen, validated struct, changed live through ``configure``."""

from __future__ import annotations

import math

import msgspec

from ..errors import InvalidRequestError
from .model import PRIORITY_MAX, PRIORITY_MIN

__all__ = [
    "AdmissionSettings",
    "AutoscaleRegion",
    "AutoscaleSettings",
    "BreakerSettings",
    "PriorityRule",
    "Settings",
]


class AdmissionSettings(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Backpressure limits on *waiting* tasks (PENDING, READY or FAILED awaiting a retry)."""

    #: Waiting tasks across all queues.
    max_queued: int = 1_000_000
    #: Waiting tasks in any one queue.
    max_queued_per_queue: int = 1_000_000
    #: Above this fraction of a limit only priority >= ``soft_min_priority`` is admitted.
    soft_watermark: float = 0.8
    #: Above this fraction of a limit nothing is admitted.
    hard_watermark: float = 1.0
    soft_min_priority: int = 1
    #: Bounds of the retry-after hint given with a rejection, seconds.
    retry_after_min: float = 1.0
    retry_after_max: float = 60.0


class BreakerSettings(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Circuit breakers per (region, task name) and per declared resource."""

    #: Outcomes kept in the sliding window.
    window: int = 20
    #: No decision before this many outcomes are in the window.
    min_samples: int = 10
    #: Open when failures / samples reaches this.
    failure_rate: float = 0.5
    #: Seconds open before one probe is let through (half-open).
    cooldown: float = 30.0


class AutoscaleRegion(msgspec.Struct, frozen=True, kw_only=True):
    """One region's autoscale settings, in place of the defaults of :class:`AutoscaleSettings`."""

    region: str
    min_workers: int
    max_workers: int
    target_utilisation: float = 0.75
    cooldown: float = 60.0


class AutoscaleSettings(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the autoscalers size their pools by (``tierq.core.autoscale``), read at every
    check: the defaults, and ``regions`` with their own."""

    #: Fewest workers (0: none while nothing waits).
    min_workers: int = 0
    max_workers: int = 10
    #: Busy-slot fraction aimed for.
    target_utilisation: float = 0.75
    #: Seconds the need must stay below the count before workers are drained.
    cooldown: float = 60.0
    regions: tuple[AutoscaleRegion, ...] = ()

    def for_region(self, region: str) -> AutoscaleSettings:
        """The settings that hold in ``region`` (its entry in ``regions``, else the defaults)."""
        for r in self.regions:
            if r.region == region:
                return AutoscaleSettings(
                    min_workers=r.min_workers,
                    max_workers=r.max_workers,
                    target_utilisation=r.target_utilisation,
                    cooldown=r.cooldown,
                )
        return msgspec.structs.replace(self, regions=())


class PriorityRule(msgspec.Struct, frozen=True, kw_only=True):
    """Tasks named ``task_name`` get ``boost`` points while more than ``min_queue_depth`` of
    them are READY (e.g. drain a growing backlog of one type faster)."""

    task_name: str
    min_queue_depth: int
    boost: int


class Settings(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Everything the scheduling core can be tuned with. ``validate()`` before use."""

    admission: AdmissionSettings = AdmissionSettings()
    #: Priority points gained per second of waiting in READY. 0 (the default) is strict
    #: priority; 0.01 lets a task overtake one 1 point higher after 100 s of waiting.
    aging_rate: float = 0.0
    #: Within this many seconds of its deadline a task gains ``deadline_boost`` points.
    deadline_window: float = 60.0
    deadline_boost: int = 100
    priority_rules: tuple[PriorityRule, ...] = ()
    breaker: BreakerSettings = BreakerSettings()
    #: A region that neither leases nor heartbeats for this long loses what it holds.
    region_lease_seconds: float = 10.0
    max_workflow_nodes: int = 100_000
    max_workflow_edges: int = 1_000_000
    #: Cap on args + kwargs (estimated encoded size) and on a result, bytes.
    max_payload_bytes: int = 1 << 20
    #: Nesting depth limit of args, kwargs and results.
    max_json_depth: int = 32
    #: Upper bound of a task's execution timeout, seconds.
    max_timeout: float = 7 * 86400.0
    #: Terminal tasks are dropped from memory this long after they finished.
    retention_seconds: float = 3600.0
    #: Most tasks one lease call may hand out.
    max_lease_batch: int = 10_000
    autoscale: AutoscaleSettings = AutoscaleSettings()

    def validate(self) -> Settings:
        """Raise InvalidRequestError naming the first bad field; return self for chaining."""
        a = self.admission
        _int(a.max_queued, "admission.max_queued", 1)
        _int(a.max_queued_per_queue, "admission.max_queued_per_queue", 1)
        _frac(a.soft_watermark, "admission.soft_watermark")
        _frac(a.hard_watermark, "admission.hard_watermark")
        if a.soft_watermark > a.hard_watermark:
            raise InvalidRequestError(
                "admission.soft_watermark must not exceed admission.hard_watermark",
                field="admission.soft_watermark",
            )
        _int(a.soft_min_priority, "admission.soft_min_priority", PRIORITY_MIN, PRIORITY_MAX)
        _num(a.retry_after_min, "admission.retry_after_min", 0.0)
        _num(a.retry_after_max, "admission.retry_after_max", a.retry_after_min)
        _num(self.aging_rate, "aging_rate", 0.0, 1000.0)
        _num(self.deadline_window, "deadline_window", 0.0)
        _int(self.deadline_boost, "deadline_boost", 0, PRIORITY_MAX - PRIORITY_MIN)
        for i, rule in enumerate(self.priority_rules):
            field = f"priority_rules[{i}]"
            if not isinstance(rule.task_name, str) or not rule.task_name:
                raise InvalidRequestError(f"{field}.task_name must be a task name", field=field)
            _int(rule.min_queue_depth, f"{field}.min_queue_depth", 0)
            _int(rule.boost, f"{field}.boost", -(PRIORITY_MAX - PRIORITY_MIN))
        b = self.breaker
        _int(b.window, "breaker.window", 1, 100_000)
        _int(b.min_samples, "breaker.min_samples", 1, b.window)
        _num(b.failure_rate, "breaker.failure_rate", 0.0, 1.0)
        if b.failure_rate == 0.0:
            raise InvalidRequestError(
                "breaker.failure_rate must be > 0", field="breaker.failure_rate"
            )
        _num(b.cooldown, "breaker.cooldown", 0.0)
        _num(self.region_lease_seconds, "region_lease_seconds", 0.001)
        _int(self.max_workflow_nodes, "max_workflow_nodes", 1)
        _int(self.max_workflow_edges, "max_workflow_edges", 0)
        _int(self.max_payload_bytes, "max_payload_bytes", 1)
        _int(self.max_json_depth, "max_json_depth", 1, 200)
        _num(self.max_timeout, "max_timeout", 0.001)
        _num(self.retention_seconds, "retention_seconds", 0.0)
        _int(self.max_lease_batch, "max_lease_batch", 1)
        # Imported here: validate.py imports this module (its checks take Settings).
        from .validate import check_subject_token

        _autoscale(self.autoscale, "autoscale")
        seen: set[str] = set()
        for i, r in enumerate(self.autoscale.regions):
            field = f"autoscale.regions[{i}]"
            check_subject_token(r.region, f"{field}.region")
            if r.region in seen:
                raise InvalidRequestError(
                    f"region {r.region!r} appears twice in autoscale.regions", field=field
                )
            seen.add(r.region)
            _autoscale(r, field)
        return self

    def rule_boosts(self) -> dict[str, tuple[PriorityRule, ...]]:
        """Rules grouped by task name (what the lease path looks up)."""
        out: dict[str, list[PriorityRule]] = {}
        for rule in self.priority_rules:
            out.setdefault(rule.task_name, []).append(rule)
        return {k: tuple(v) for k, v in out.items()}


def _autoscale(s: AutoscaleSettings | AutoscaleRegion, at: str) -> None:
    _int(s.min_workers, f"{at}.min_workers", 0)
    _int(s.max_workers, f"{at}.max_workers", s.min_workers)
    _num(s.target_utilisation, f"{at}.target_utilisation", 0.01, 1.0)
    _num(s.cooldown, f"{at}.cooldown", 0.0)


def _int(value: object, field: str, lo: int | None = None, hi: int | None = None) -> None:
    if type(value) is not int:
        raise InvalidRequestError(f"{field} must be an integer, got {value!r}", field=field)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InvalidRequestError(
            f"{field} must be in [{lo}, {hi if hi is not None else 'inf'}], got {value}",
            field=field,
        )


def _num(value: object, field: str, lo: float | None = None, hi: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequestError(f"{field} must be a finite number, got {value!r}", field=field)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise InvalidRequestError(
            f"{field} must be in [{lo}, {hi if hi is not None else 'inf'}], got {value}",
            field=field,
        )


def _frac(value: object, field: str) -> None:
    _num(value, field, 0.0, 1.0)
