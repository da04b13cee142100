"""KEDA's external scaler, called over real gRPC the way KEDA calls it: the metric is the
ready depth, IsActive flips as work arrives and drains, StreamIsActive pushes the change."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import grpc.aio
import httpx
import pytest

import tierq
from tierq.api import ApiServer
from tierq.api.proto import externalscaler_pb2 as epb
from tierq.api.proto import externalscaler_pb2_grpc as epb_grpc

from .conftest import Stack
from .support import TOKENS, api_config

JOB = """
import asyncio
import tierq

app = tierq.App()

@app.task(name="k.job")
async def job(seconds):
    await asyncio.sleep(seconds)
"""


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"tq_keda_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(JOB))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


@pytest.fixture
async def scaler(stack_channel: grpc.aio.Channel) -> epb_grpc.ExternalScalerStub:
    return epb_grpc.ExternalScalerStub(stack_channel)


@pytest.fixture
async def app(stack: Stack) -> AsyncIterator[tierq.App]:
    async with tierq.App(stack.cluster.nats_url) as client:
        yield client


def ref(**metadata: str) -> epb.ScaledObjectRef:
    """A ScaledObject's reference as KEDA sends it (the API here requires a read token)."""
    meta = {"region": "default", "token": TOKENS["read"], **metadata}
    return epb.ScaledObjectRef(name="workers", namespace="tierq", scalerMetadata=meta)


async def metric(scaler: epb_grpc.ExternalScalerStub, **metadata: str) -> int:
    reply = await scaler.GetMetrics(epb.GetMetricsRequest(scaledObjectRef=ref(**metadata)))
    (value,) = reply.metricValues
    assert value.metricValueFloat == value.metricValue
    return value.metricValue


async def test_metric_spec_names_one_metric_per_scaled_object(
    scaler: epb_grpc.ExternalScalerStub,
) -> None:
    spec = await scaler.GetMetricSpec(ref(taskTypes="k.job", targetSize="6"))
    (only,) = spec.metricSpecs
    assert only.metricName == "tierq-backlog-default-k-job"
    assert (only.targetSize, only.targetSizeFloat) == (6, 6.0)
    other = await scaler.GetMetricSpec(ref(queue="mail", region="eu", metric="ready"))
    assert other.metricSpecs[0].metricName == "tierq-ready-eu-q-mail"


async def test_get_metrics_is_the_ready_depth_and_is_active_flips(
    stack: Stack, scaler: epb_grpc.ExternalScalerStub, app: tierq.App, module: str
) -> None:
    assert not (await scaler.IsActive(ref(taskTypes="k.job"))).result
    assert await metric(scaler, taskTypes="k.job", metric="ready") == 0
    handles = [await app.submit("k.job", 0.2) for _ in range(5)]
    await app.submit("other.kind", 0)  # another type: not in this metric
    stats = (await stack.http.get("/v1/stats")).json()
    assert stats["ready_by_name"]["k.job"] == 5
    assert await metric(scaler, taskTypes="k.job", metric="ready") == 5
    assert await metric(scaler, taskTypes="k.job") == 5  # backlog: nothing held yet
    assert await metric(scaler, metric="ready") == 6  # every type
    assert (await scaler.IsActive(ref(taskTypes="k.job"))).result
    await stack.cluster.start_worker(module)
    await app.wait_tasks([h.id for h in handles], timeout=30)
    assert not (await scaler.IsActive(ref(taskTypes="k.job"))).result
    assert await metric(scaler, taskTypes="k.job") == 0


async def test_stream_is_active_pushes_within_a_second(
    stack: Stack, scaler: epb_grpc.ExternalScalerStub, app: tierq.App, module: str
) -> None:
    call = scaler.StreamIsActive(ref(taskTypes="k.job"))
    stream = call.__aiter__()
    try:
        assert (await anext(stream)).result is False  # the state now, at once
        handle = await app.submit("k.job", 0.5)
        async with asyncio.timeout(1.0):
            assert (await anext(stream)).result is True
        await stack.cluster.start_worker(module)
        await handle.result(timeout=30)
        async with asyncio.timeout(1.0):
            assert (await anext(stream)).result is False
    finally:
        call.cancel()


async def metric_float(scaler: epb_grpc.ExternalScalerStub, **metadata: str) -> float:
    reply = await scaler.GetMetrics(epb.GetMetricsRequest(scaledObjectRef=ref(**metadata)))
    (value,) = reply.metricValues
    assert value.metricValue == int(value.metricValueFloat)  # older KEDA: rounded down
    return value.metricValueFloat


async def test_a_task_types_settings_bound_what_keda_reads(
    stack: Stack, scaler: epb_grpc.ExternalScalerStub, app: tierq.App
) -> None:
    """autoscale.task_types for k.job: min 1, max 3 replicas, 50% of 4 slots per replica."""
    entry = {
        "task_type": "k.job",
        "min_workers": 1,
        "max_workers": 3,
        "target_utilisation": 0.5,
    }
    put = await stack.http.put("/v1/settings", json={"autoscale": {"task_types": [entry]}})
    assert put.status_code == 200, put.text
    job = {"taskTypes": "k.job", "slotsPerReplica": "4"}
    spec = await scaler.GetMetricSpec(ref(**job))
    assert spec.metricSpecs[0].targetSizeFloat == 2.0  # 4 slots x 0.5
    # Nothing waits, yet min_workers 1: one replica's worth, and active (not scaled to 0).
    assert await metric_float(scaler, **job) == 2.0
    assert (await scaler.IsActive(ref(**job))).result
    for _ in range(20):
        await app.submit("k.job", 0)
    # 20 waiting, but never more than max_workers' worth: 3 x 2.
    assert await metric_float(scaler, **job) == 6.0
    assert await metric_float(scaler, taskTypes="k.job", targetSize="5") == 15.0
    # A ScaledObject of another type, or of all types, reads the plain figure.
    assert await metric(scaler, taskTypes="other.kind") == 0
    assert await metric(scaler, metric="ready") == 20
    # For another region only when the entry names no region; one naming "eu" is not ours.
    entry["region"] = "eu"
    put = await stack.http.put("/v1/settings", json={"autoscale": {"task_types": [entry]}})
    assert put.status_code == 200, put.text
    assert await metric_float(scaler, **job) == 20.0
    assert spec.metricSpecs[0].metricName == "tierq-backlog-default-k-job"
    spec = await scaler.GetMetricSpec(ref(**job))
    assert spec.metricSpecs[0].targetSizeFloat == 3.0  # the region's utilisation: 4 x 0.75


async def test_the_scaler_needs_a_read_token_and_valid_metadata(
    scaler: epb_grpc.ExternalScalerStub,
) -> None:
    bare = epb.ScaledObjectRef(name="w", namespace="n", scalerMetadata={"region": "default"})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await scaler.IsActive(bare)
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
    # The token may come as call metadata instead (KEDA's TLS/auth options aside).
    header = (("authorization", f"Bearer {TOKENS['read']}"),)
    assert not (await scaler.IsActive(bare, metadata=header)).result
    for bad in (
        {"metric": "latency"},
        {"targetSize": "0"},
        {"queue": "q", "taskTypes": "a"},
        {"slotsPerReplica": "0"},
        {"slotsPerReplica": "2.5"},
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await scaler.GetMetricSpec(ref(**bad))
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_keda_open_lets_keda_read_without_a_token(stack: Stack) -> None:
    config = api_config(stack.cluster.nats_url, keda_open=True)
    async with ApiServer(config) as api, grpc.aio.insecure_channel(api.grpc_target) as ch:
        scaler = epb_grpc.ExternalScalerStub(ch)
        bare = epb.ScaledObjectRef(name="w", namespace="n", scalerMetadata={"region": "default"})
        assert not (await scaler.IsActive(bare)).result
        # Only the scaler: the rest of the API still wants a token.
        async with httpx.AsyncClient(base_url=api.url) as http:
            assert (await http.get("/v1/stats")).status_code == 401


async def test_the_optional_stream_metric_spec_is_unimplemented_so_keda_falls_back(
    scaler: epb_grpc.ExternalScalerStub,
) -> None:
    """KEDA's proto (taken whole from KEDA) declares StreamMetricSpec; KEDA treats
    UNIMPLEMENTED as "use GetMetricSpec", which tierq answers."""
    service = epb.DESCRIPTOR.services_by_name["ExternalScaler"]
    assert [m.name for m in service.methods] == [
        "IsActive",
        "StreamIsActive",
        "GetMetricSpec",
        "GetMetrics",
        "StreamMetricSpec",
    ]
    call = scaler.StreamMetricSpec(ref(taskTypes="k.job"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await anext(call.__aiter__())
    assert err.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert (await scaler.GetMetricSpec(ref(taskTypes="k.job"))).metricSpecs
