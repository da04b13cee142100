"""Scheduler settings: one frozen, validated struct, changed live through ``configure``."""

from __future__ import annotations

import math
from collections.abc import Collection

import msgspec

from ..errors import InvalidRequestError
from .model import PRIORITY_MAX, PRIORITY_MIN

__all__ = [
    "AdmissionSettings",
    "AutoscaleRegion",
    "AutoscaleSettings",
    "AutoscaleTaskType",
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
    #: In place of ``AutoscaleSettings.target_latency`` in this region (None: that one).
    target_latency: float | None = None


class AutoscaleTaskType(msgspec.Struct, frozen=True, kw_only=True):
    """The autoscale settings of the workers that run ``task_type``: in ``region``, or in
    every region when it is None. They win over the region's settings (see
    :meth:`AutoscaleSettings.for_pool`). A region or type nobody runs yet is allowed: the
    settings may come before the workers."""

    task_type: str
    region: str | None = None
    min_workers: int
    max_workers: int
    target_utilisation: float = 0.75
    cooldown: float = 60.0
    #: In place of the region's ``target_latency`` for this type (None: the region's).
    target_latency: float | None = None


class AutoscaleSettings(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the autoscalers size their pools by (``tierq.core.autoscale``), read at every
    check: the defaults, ``regions`` with their own, and ``task_types`` with their own."""

    #: Fewest workers (0: none while nothing waits).
    min_workers: int = 0
    max_workers: int = 10
    #: Busy-slot fraction aimed for.
    target_utilisation: float = 0.75
    #: Seconds the need must stay below the count before workers are drained.
    cooldown: float = 60.0
    #: Seconds: while the p50 submit-to-start latency of a pool's types stays above this and
    #: work waits, add workers even if the backlog rule would not (None: no such rule).
    target_latency: float | None = None
    regions: tuple[AutoscaleRegion, ...] = ()
    task_types: tuple[AutoscaleTaskType, ...] = ()

    def for_region(self, region: str) -> AutoscaleSettings:
        """The settings that hold in ``region`` (its entry in ``regions``, else the defaults;
        an entry without a ``target_latency`` takes the default one)."""
        for r in self.regions:
            if r.region == region:
                return _plain(r, _latency(r, self.target_latency))
        return _plain(self, self.target_latency)

    def for_task_type(self, region: str, task_type: str) -> AutoscaleTaskType | None:
        """The entry of ``task_type`` in ``task_types`` for ``region``: the one naming the
        region, else the one for every region, else None."""
        found = None
        for t in self.task_types:
            if t.task_type == task_type:
                if t.region == region:
                    return t
                if t.region is None:
                    found = t
        return found

    def for_pool(self, region: str, task_types: Collection[str]) -> AutoscaleSettings:
        """The settings of a pool of workers in ``region`` that run ``task_types``.

        Each type's settings are its entry in ``task_types`` (:meth:`for_task_type`), else
        the region's (:meth:`for_region`). A pool serves all its types, so it takes the
        settings of each that ask for the most workers: the highest ``min_workers`` and
        ``max_workers``, the lowest ``target_utilisation``, the longest ``cooldown`` and the
        lowest ``target_latency``. A pool of one type with an entry has exactly that entry's
        settings (its ``target_latency`` the region's when it names none); one with no entry,
        the region's.
        """
        region_wide = self.for_region(region)
        chosen: list[AutoscaleSettings] = []
        for name in sorted(set(task_types)):
            entry = self.for_task_type(region, name)
            if entry is None:
                chosen.append(region_wide)
            else:
                chosen.append(_plain(entry, _latency(entry, region_wide.target_latency)))
        if not chosen:
            return region_wide
        latencies = [c.target_latency for c in chosen if c.target_latency is not None]
        return AutoscaleSettings(
            min_workers=max(c.min_workers for c in chosen),
            max_workers=max(c.max_workers for c in chosen),
            target_utilisation=min(c.target_utilisation for c in chosen),
            cooldown=max(c.cooldown for c in chosen),
            target_latency=min(latencies) if latencies else None,
        )


def _latency(s: AutoscaleRegion | AutoscaleTaskType, inherited: float | None) -> float | None:
    return s.target_latency if s.target_latency is not None else inherited


def _plain(
    s: AutoscaleSettings | AutoscaleRegion | AutoscaleTaskType, target_latency: float | None
) -> AutoscaleSettings:
    """The figures of ``s`` alone (no per-region or per-type entries)."""
    return AutoscaleSettings(
        min_workers=s.min_workers,
        max_workers=s.max_workers,
        target_utilisation=s.target_utilisation,
        cooldown=s.cooldown,
        target_latency=target_latency,
    )


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
        _check_autoscale(self.autoscale)
        return self

    def rule_boosts(self) -> dict[str, tuple[PriorityRule, ...]]:
        """Rules grouped by task name (what the lease path looks up)."""
        out: dict[str, list[PriorityRule]] = {}
        for rule in self.priority_rules:
            out.setdefault(rule.task_name, []).append(rule)
        return {k: tuple(v) for k, v in out.items()}


def _check_autoscale(a: AutoscaleSettings) -> None:
    # Imported here: validate.py imports this module (its checks take Settings).
    from .validate import check_subject_token, check_task_name

    _autoscale(a, "autoscale")
    seen: set[str] = set()
    for i, r in enumerate(a.regions):
        field = f"autoscale.regions[{i}]"
        check_subject_token(r.region, f"{field}.region")
        if r.region in seen:
            raise InvalidRequestError(
                f"region {r.region!r} appears twice in autoscale.regions", field=field
            )
        seen.add(r.region)
        _autoscale(r, field)
    pairs: set[tuple[str | None, str]] = set()
    for i, t in enumerate(a.task_types):
        field = f"autoscale.task_types[{i}]"
        check_task_name(t.task_type, f"{field}.task_type")
        if t.region is not None:
            check_subject_token(t.region, f"{field}.region")
        if (t.region, t.task_type) in pairs:
            where = f"region {t.region!r}" if t.region is not None else "every region"
            raise InvalidRequestError(
                f"task type {t.task_type!r} for {where} appears twice in autoscale.task_types",
                field=f"{field}.task_type",
            )
        pairs.add((t.region, t.task_type))
        _autoscale(t, field)


def _autoscale(s: AutoscaleSettings | AutoscaleRegion | AutoscaleTaskType, at: str) -> None:
    _int(s.min_workers, f"{at}.min_workers", 0)
    _int(s.max_workers, f"{at}.max_workers", s.min_workers)
    _num(s.target_utilisation, f"{at}.target_utilisation", 0.01, 1.0)
    _num(s.cooldown, f"{at}.cooldown", 0.0)
    if s.target_latency is not None:
        _num(s.target_latency, f"{at}.target_latency", 0.001)


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
