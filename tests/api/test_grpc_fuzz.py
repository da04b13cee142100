"""gRPC fuzz: every method of both services, with random and boundary field values.

Messages are built from the descriptors (so a new field or method is fuzzed without editing
this file): each field gets a boundary value (0, -1, the type's extremes, NaN, unknown enum
numbers, empty / huge / control-character strings, unknown ids) or a random one. Whatever
comes in, the answer is OK or a status that tells the client what to fix; never INTERNAL,
UNKNOWN or UNIMPLEMENTED, and the accepted tasks stay intact. Seeded: a failure names the
seed and the request, and ``TIERQ_GRPC_FUZZ_CASES`` raises the number of cases.
"""

from __future__ import annotations

import math
import os
import random
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message

from tierq.api.proto import tierq_pb2, workers_pb2

from .conftest import Stack
from .support import TOKENS

pytestmark = pytest.mark.integration

S = grpc.StatusCode
SEED = 20261207
CASES = int(os.environ.get("TIERQ_GRPC_FUZZ_CASES", "25"))
#: Statuses that mean the server failed, not the request.
BROKEN = {S.INTERNAL, S.UNKNOWN, S.UNIMPLEMENTED, S.DATA_LOSS}

_INT32 = [0, 1, -1, 2**31 - 1, -(2**31), 1000, 1001, -1001, 10_000, 100_001]
_INT64 = [*_INT32, 2**63 - 1, -(2**63), 2**53 + 1]
_UINT32 = [0, 1, 2**32 - 1, 2**31]
_UINT64 = [0, 1, 2**64 - 1, 2**63, 2**63 - 1, 2**53 + 1]
_DOUBLE = [0.0, -0.0, -1.0, 1e-9, 1e308, -1e308, math.inf, -math.inf, math.nan, 86_401.0]
_STRINGS = [
    "",
    "a",
    "default",
    "shell",
    "Shell",
    "\uff53\uff48\uff45\uff4c\uff4c",
    "x" * 10_000,
    "\u00e9" * 3000,
    "a\x00b",
    "evil\u202etxt",
    "e\u0301",
    "../../etc/passwd",
    "tierq.master.>",
    "$JS.API.>",
    "\u00b2",
    "9" * 31,
    "{",
    "[1, 2]",
    '{"a": [[[[[[[[1]]]]]]]]}',
    "null",
    "01a2293e222500000001",
    "worker:w1",
]


def _scalar(field: FieldDescriptor, rng: random.Random) -> Any:
    t = field.type
    if t == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if t == FieldDescriptor.TYPE_ENUM:
        numbers = [v.number for v in field.enum_type.values]
        return rng.choice([*numbers, 999, -1, 2**31 - 1])
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        value = rng.choice(_DOUBLE) if rng.random() < 0.7 else rng.uniform(-1e6, 1e6)
        if t == FieldDescriptor.TYPE_FLOAT and math.isfinite(value) and abs(value) > 3e38:
            value = math.copysign(3e38, value)
        return value
    if t in (FieldDescriptor.TYPE_STRING,):
        return rng.choice(_STRINGS) if rng.random() < 0.8 else _random_text(rng)
    if t == FieldDescriptor.TYPE_BYTES:
        return rng.choice([b"", b"\x00" * 10, b"\xff\xfe", b"x" * 5000])
    pool = {
        FieldDescriptor.TYPE_INT32: _INT32,
        FieldDescriptor.TYPE_SINT32: _INT32,
        FieldDescriptor.TYPE_SFIXED32: _INT32,
        FieldDescriptor.TYPE_INT64: _INT64,
        FieldDescriptor.TYPE_SINT64: _INT64,
        FieldDescriptor.TYPE_SFIXED64: _INT64,
        FieldDescriptor.TYPE_UINT32: _UINT32,
        FieldDescriptor.TYPE_FIXED32: _UINT32,
        FieldDescriptor.TYPE_UINT64: _UINT64,
        FieldDescriptor.TYPE_FIXED64: _UINT64,
    }[t]
    return rng.choice(pool)


def _random_text(rng: random.Random) -> str:
    length = rng.choice([1, 5, 64, 65, 200, 201, 257])
    return "".join(
        chr(rng.choice([rng.randint(32, 126), rng.randint(0, 0x2FFFF)])) for _ in range(length)
    )


def build(descriptor: Descriptor, rng: random.Random, depth: int = 0) -> Message:
    """A message of ``descriptor`` with each field set (or not) to a fuzzed value."""
    msg = message_factory.GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if rng.random() < 0.3:
            continue  # absent: the default, or "not set" for optional fields
        message_field = field.type == FieldDescriptor.TYPE_MESSAGE
        if message_field and depth >= 3:
            continue
        if field.is_repeated:
            target = getattr(msg, field.name)
            for _ in range(rng.choice([0, 1, 2, 5])):
                if message_field:
                    target.add().CopyFrom(build(field.message_type, rng, depth + 1))
                else:
                    _append(target, field, rng)
        elif message_field:
            getattr(msg, field.name).CopyFrom(build(field.message_type, rng, depth + 1))
        else:
            _set(msg, field, rng)
    return msg


def _set(msg: Message, field: FieldDescriptor, rng: random.Random) -> None:
    value = _scalar(field, rng)
    try:
        setattr(msg, field.name, value)
    except ValueError:  # e.g. a string the protobuf runtime refuses (lone surrogate)
        setattr(msg, field.name, "x")


def _append(target: Any, field: FieldDescriptor, rng: random.Random) -> None:
    try:
        target.append(_scalar(field, rng))
    except ValueError:
        target.append("x")


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _methods() -> list[tuple[str, MethodDescriptor]]:
    out = []
    for module in (tierq_pb2, workers_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            out += [(service.full_name, m) for m in service.methods]
    return out


async def _call(
    channel: grpc.aio.Channel, service: str, method: MethodDescriptor, request: Message
) -> S:
    path = f"/{service}/{method.name}"
    reply = message_factory.GetMessageClass(method.output_type)
    metadata = (("authorization", f"Bearer {TOKENS['admin']}"),)
    try:
        if method.server_streaming:
            stream = channel.unary_stream(
                path,
                request_serializer=_serialize,
                response_deserializer=reply.FromString,
            )(request, metadata=metadata, timeout=2.0)
            async for _ in stream:
                break
            stream.cancel()
        else:
            await channel.unary_unary(
                path,
                request_serializer=_serialize,
                response_deserializer=reply.FromString,
            )(request, metadata=metadata, timeout=20.0)
    except grpc.aio.AioRpcError as err:
        if method.server_streaming and err.code() in (S.DEADLINE_EXCEEDED, S.CANCELLED):
            return S.OK  # the watch was open and waiting for events: nothing went wrong
        return err.code()
    return S.OK


@pytest.mark.timeout(300)
async def test_every_method_survives_fuzzed_requests(
    stack: Stack, stack_channel: grpc.aio.Channel
) -> None:
    r = await stack.http.post("/v1/tasks", json={"name": "keep", "args": [1]})
    assert r.status_code == 201
    kept = r.json()["id"]
    before = (await stack.http.get(f"/v1/tasks/{kept}")).json()
    rng = random.Random(SEED)
    broken = []
    for service, method in _methods():
        for case in range(CASES):
            request = build(method.input_type, rng)
            code = await _call(stack_channel, service, method, request)
            if code in BROKEN:
                broken.append((method.name, case, code, str(request)[:300]))
    assert broken == [], f"seed {SEED}: {broken[:10]}"
    assert (await stack.http.get(f"/v1/tasks/{kept}")).json()["state"] == before["state"]
    # Empty messages too: every field at its default.
    for service, method in _methods():
        request = message_factory.GetMessageClass(method.input_type)()
        assert await _call(stack_channel, service, method, request) not in BROKEN, method.name
