"""KEDA's external scaler, served by the API's gRPC server: Kubernetes scales a region's
worker Deployment on tierq's queue depth.

A ScaledObject's ``external-push`` (or ``external``) trigger names what it scales on in its
metadata; each ScaledObject gets one metric:

- ``region`` (default ``default``): the region whose workers the Deployment runs;
- ``taskTypes``: comma-separated task types its workers run (default: all of them), or
  ``queue``: one queue's waiting tasks instead (PENDING, READY and FAILED awaiting a retry:
  the master counts queues that way);
- ``metric``: ``backlog`` (default): READY at the master for those types plus what the region
  holds (assigned and running), which is the work the Deployment should be sized for;
  ``ready``: READY only;
- ``targetSize`` (default 8): the metric per replica the HPA aims at (a worker's slots times
  the utilisation wanted), or ``slotsPerReplica``: a worker's slots, times the
  ``target_utilisation`` of the autoscale settings (below);
- ``token``: an API token with read access when the API requires tokens, unless the call
  carries ``authorization`` metadata, or the API runs with ``--keda-open`` (KEDA's calls
  need no token then: they only read queue depths).

**Per task type settings.** When a ScaledObject names task types and the live settings have
an entry for one of them in ``autoscale.task_types`` (for its region or for every region),
the pool's settings (``AutoscaleSettings.for_pool``) bound the metric KEDA reads: never above
``max_workers * targetSize`` (so the HPA asks for at most ``max_workers`` replicas) and never
below ``min_workers * targetSize`` (at least ``min_workers``; with ``min_workers`` above
zero, IsActive stays true and the Deployment is not scaled to zero). The ScaledObject's
``minReplicaCount`` / ``maxReplicaCount`` still bound what KEDA does (set them to 0 and at
least the largest ``max_workers`` you will set); the ``cooldown`` maps to the ScaledObject's
``cooldownPeriod`` and the HPA's scale-down stabilization window, which only the
ScaledObject sets (``deploy/kubernetes/``).

``IsActive`` is true while the metric is above zero: KEDA scales a Deployment at zero replicas
to one then, and back to zero after its cool-down when it is false. ``StreamIsActive`` pushes
the flag on every change: the API listens to the master's events and reads the figures again
after each burst of them, so a region scales from zero as soon as work arrives (and is
re-checked every 5 s without events).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import DecodeError, Message

from ..core.settings import AutoscaleSettings, Settings
from ..engine import Message as NatsMessage
from ..engine import Subscription
from ..errors import InvalidRequestError, TierqError
from ..protocol import StatsView
from .auth import Principal, Role
from .errors import grpc_abort
from .proto import externalscaler_pb2 as epb
from .service import ApiService, Caller

__all__ = ["SERVICE", "Trigger", "bounded", "handlers", "metric_value", "pool_settings"]

log = logging.getLogger("tierq.api.keda")

SERVICE = epb.DESCRIPTOR.services_by_name["ExternalScaler"].full_name
Context = grpc.aio.ServicerContext[Any, Any]

#: Seconds between two readings of a StreamIsActive without events, and the pause that
#: gathers a burst of events into one reading.
_RECHECK = 5.0
_SETTLE = 0.05
_METRIC_NAME = re.compile(r"[^a-z0-9-]+")
#: Who KEDA is when the API lets it call without a token (``ApiConfig.keda_open``).
_KEDA = Principal("keda", Role.READ, None)


@dataclass(frozen=True, slots=True)
class Trigger:
    """What one ScaledObject scales on (its trigger metadata, checked)."""

    region: str = "default"
    task_types: tuple[str, ...] = ()
    queue: str | None = None
    metric: str = "backlog"
    #: ``targetSize`` as given (None: from ``slots``, else 8).
    target_size: float | None = None
    #: ``slotsPerReplica``: a worker's slots (the target is then slots x utilisation).
    slots: int | None = None

    def target(self, pool: AutoscaleSettings | None) -> float:
        """The metric per replica: ``targetSize``, else slots at the pool's utilisation."""
        if self.target_size is not None:
            return self.target_size
        if self.slots is not None:
            utilisation = (pool or AutoscaleSettings()).target_utilisation
            return self.slots * utilisation
        return 8.0

    @property
    def name(self) -> str:
        """The metric's name: unique per region and selection, as Kubernetes allows."""
        what = f"q-{self.queue}" if self.queue else "-".join(self.task_types) or "all"
        raw = f"tierq-{self.metric}-{self.region}-{what}".lower()
        return _METRIC_NAME.sub("-", raw)[:200].strip("-")

    @classmethod
    def parse(cls, metadata: dict[str, str]) -> Trigger:
        region = metadata.get("region", "default").strip() or "default"
        types = tuple(t.strip() for t in metadata.get("taskTypes", "").split(",") if t.strip())
        queue = metadata.get("queue", "").strip() or None
        if queue and types:
            raise InvalidRequestError("give taskTypes or queue, not both", field="queue")
        metric = metadata.get("metric", "backlog").strip()
        if metric not in ("backlog", "ready"):
            raise InvalidRequestError(
                f"metric must be 'backlog' or 'ready', got {metric!r}", field="metric"
            )
        target: float | None = None
        if "targetSize" in metadata:
            try:
                target = float(metadata["targetSize"])
            except ValueError:
                target = -1.0
            if not 0 < target < 1e9:
                raise InvalidRequestError(
                    "targetSize must be a positive number", field="targetSize"
                )
        slots: int | None = None
        if "slotsPerReplica" in metadata:
            raw = metadata["slotsPerReplica"].strip()
            if not raw.isdigit() or not 0 < int(raw) <= 10_000:
                raise InvalidRequestError(
                    "slotsPerReplica must be a whole number in [1, 10000]",
                    field="slotsPerReplica",
                )
            slots = int(raw)
        return cls(
            region=region,
            task_types=types,
            queue=queue,
            metric=metric,
            target_size=target,
            slots=slots,
        )

    @property
    def reads_settings(self) -> bool:
        """Whether the settings can change this trigger's metric or target."""
        return bool(self.task_types) or self.slots is not None


def metric_value(trigger: Trigger, stats: StatsView) -> int:
    """The trigger's metric in the master's statistics."""
    if trigger.queue is not None:
        waiting = stats.waiting_by_queue.get(trigger.queue, 0)
    elif trigger.task_types:
        waiting = sum(stats.ready_by_name.get(t, 0) for t in trigger.task_types)
    else:
        waiting = stats.queue_depth
    if trigger.metric == "ready":
        return waiting
    return waiting + stats.held_by_region.get(trigger.region, 0)


def pool_settings(trigger: Trigger, settings: Settings) -> AutoscaleSettings | None:
    """The autoscale settings of the trigger's pool when one of its task types has its own
    entry in ``autoscale.task_types`` (else None: the metric is the plain figure)."""
    scale = settings.autoscale
    if not any(scale.for_task_type(trigger.region, t) for t in trigger.task_types):
        return None
    return scale.for_pool(trigger.region, trigger.task_types)


def bounded(value: float, pool: AutoscaleSettings | None, target: float) -> float:
    """``value`` within the pool's bounds, in replicas of ``target``: the HPA asks for
    ``ceil(value / target)`` replicas, so this keeps that within min and max workers."""
    if pool is None:
        return value
    return min(max(value, pool.min_workers * target), pool.max_workers * target)


class _Scaler:
    """The four methods, over the API's service (its read permission, its master client)."""

    def __init__(self, service: ApiService) -> None:
        self.service = service
        self._listeners: set[asyncio.Event] = set()
        self._sub: Subscription | None = None

    def _caller(self, ref: epb.ScaledObjectRef, context: Context) -> Caller:
        token = dict(ref.scalerMetadata).get("token")
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                token = value if isinstance(value, str) else value.decode("latin-1")
        if not token and self.service.config.keda_open:
            return Caller(_KEDA, "grpc")
        if token and " " not in token.strip():
            token = f"Bearer {token.strip()}"
        return Caller(self.service.auth.authenticate(token), "grpc")

    async def _value(self, caller: Caller, trigger: Trigger) -> float:
        if not trigger.reads_settings:
            return metric_value(trigger, await self.service.stats(caller))
        stats, settings = await asyncio.gather(
            self.service.stats(caller), self.service.get_settings(caller)
        )
        pool = pool_settings(trigger, settings)
        target = trigger.target(pool or settings.autoscale.for_region(trigger.region))
        return bounded(metric_value(trigger, stats), pool, target)

    async def _target(self, caller: Caller, trigger: Trigger) -> float:
        if trigger.target_size is not None or trigger.slots is None:
            return trigger.target(None)
        settings = await self.service.get_settings(caller)
        pool = pool_settings(trigger, settings)
        return trigger.target(pool or settings.autoscale.for_region(trigger.region))

    async def is_active(self, ref: epb.ScaledObjectRef, context: Context) -> Message:
        trigger = Trigger.parse(dict(ref.scalerMetadata))
        value = await self._value(self._caller(ref, context), trigger)
        return epb.IsActiveResponse(result=value > 0)

    async def metric_spec(self, ref: epb.ScaledObjectRef, context: Context) -> Message:
        caller = self._caller(ref, context)
        trigger = Trigger.parse(dict(ref.scalerMetadata))
        target = await self._target(caller, trigger)
        spec = epb.MetricSpec(
            metricName=trigger.name, targetSize=max(1, round(target)), targetSizeFloat=target
        )
        return epb.GetMetricSpecResponse(metricSpecs=[spec])

    async def metrics(self, request: epb.GetMetricsRequest, context: Context) -> Message:
        ref = request.scaledObjectRef
        trigger = Trigger.parse(dict(ref.scalerMetadata))
        value = await self._value(self._caller(ref, context), trigger)
        name = request.metricName or trigger.name
        metric = epb.MetricValue(
            # Older KEDA reads the integer: rounded down, so the max bound still holds.
            metricName=name,
            metricValue=math.floor(value),
            metricValueFloat=value,
        )
        return epb.GetMetricsResponse(metricValues=[metric])

    async def stream_is_active(
        self, ref: epb.ScaledObjectRef, context: Context
    ) -> AsyncIterator[Message]:
        caller = self._caller(ref, context)
        trigger = Trigger.parse(dict(ref.scalerMetadata))
        changed = asyncio.Event()
        await self._listen(changed)
        last: bool | None = None
        try:
            while True:
                changed.clear()
                active: bool | None = last
                try:
                    active = await self._value(caller, trigger) > 0
                except TierqError as exc:  # no master for a moment: keep the stream
                    log.warning("KEDA stream %s: %s", trigger.name, exc)
                if active is not None and active != last:
                    last = active
                    yield epb.IsActiveResponse(result=active)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_RECHECK):
                        await changed.wait()
                await asyncio.sleep(_SETTLE)
        finally:
            await self._unlisten(changed)

    async def _listen(self, changed: asyncio.Event) -> None:
        self._listeners.add(changed)
        if self._sub is None:
            subject = self.service.subjects.events_all
            self._sub = await self.service.engine.subscribe(subject, cb=self._on_event)

    async def _unlisten(self, changed: asyncio.Event) -> None:
        self._listeners.discard(changed)
        if not self._listeners and self._sub is not None:
            sub, self._sub = self._sub, None
            with contextlib.suppress(TierqError):
                await sub.unsubscribe()

    async def _on_event(self, msg: NatsMessage) -> None:
        for changed in self._listeners:
            changed.set()


def _parse(raw: bytes, typ: type[Any]) -> Any:
    try:
        return typ.FromString(raw)
    except (DecodeError, ValueError) as exc:
        raise InvalidRequestError(f"malformed {typ.DESCRIPTOR.name}: {exc}") from None


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def handlers(service: ApiService) -> grpc.GenericRpcHandler[Any, Any]:
    """The ``externalscaler.ExternalScaler`` service over ``service``."""
    scaler = _Scaler(service)

    def unary(name: str, typ: type[Any], call: Any) -> grpc.RpcMethodHandler[Any, Any]:
        async def handle(raw: bytes, context: Context) -> Message:
            try:
                return await call(_parse(raw, typ), context)  # type: ignore[no-any-return]
            except Exception as exc:
                await grpc_abort(context, exc, f"/{SERVICE}/{name}")
                raise

        return grpc.unary_unary_rpc_method_handler(handle, response_serializer=_serialize)

    async def stream(raw: bytes, context: Context) -> AsyncIterator[Message]:
        try:
            ref = _parse(raw, epb.ScaledObjectRef)
            async for response in scaler.stream_is_active(ref, context):
                yield response
        except Exception as exc:
            await grpc_abort(context, exc, f"/{SERVICE}/StreamIsActive")

    methods = {
        "IsActive": unary("IsActive", epb.ScaledObjectRef, scaler.is_active),
        "GetMetricSpec": unary("GetMetricSpec", epb.ScaledObjectRef, scaler.metric_spec),
        "GetMetrics": unary("GetMetrics", epb.GetMetricsRequest, scaler.metrics),
        "StreamIsActive": grpc.unary_stream_rpc_method_handler(
            stream, response_serializer=_serialize
        ),
    }
    return grpc.method_handlers_generic_handler(SERVICE, methods)
