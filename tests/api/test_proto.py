"""The generated stubs match proto/, and the messages cover the structs they carry."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import msgspec
import pytest

from tierq.api import convert, schema
from tierq.api.proto import types_pb2 as types
from tierq.core.model import Task, TaskSpec

ROOT = Path(__file__).resolve().parents[2]


def test_stubs_are_fresh() -> None:
    """Fails when proto/tierq/v1/*.proto changed without `make proto`."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "proto" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "proto" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_proto_change_without_regenerating_is_stale(tmp_path: Path) -> None:
    sources = tmp_path / "proto"
    for folder in ("tierq", "externalscaler"):
        shutil.copytree(ROOT / "proto" / folder, sources / folder)
    types_proto = sources / "tierq" / "v1" / "types.proto"
    types_proto.write_text(
        types_proto.read_text() + "\nmessage AddedWithoutMakeProto { int32 x = 1; }\n"
    )
    assert _generator().check(sources=sources) == ["types_pb2.py", "types_pb2.pyi"]


def test_another_generator_release_is_not_stale(tmp_path: Path) -> None:
    """Stubs stamped by another grpcio-tools / protoc release describe the same API."""
    package = tmp_path / "stubs"
    shutil.copytree(ROOT / "tierq" / "api" / "proto", package)
    for stub in package.glob("*_pb2*.py"):
        text = re.sub(
            r"GRPC_GENERATED_VERSION = '[^']*'",
            "GRPC_GENERATED_VERSION = '9.9.9'",
            stub.read_text(),
        )
        text = re.sub(r"# Protobuf Python Version: .*", "# Protobuf Python Version: 99.1.0", text)
        text = re.sub(r"PUBLIC,\s*\d+,\s*\d+,\s*\d+,", "PUBLIC,\n    99,\n    1,\n    0,", text)
        stub.write_text(text)
    assert _generator().check(package=package) == []


def _fields(struct: type[msgspec.Struct]) -> set[str]:
    return set(struct.__struct_fields__)


def test_rest_spec_covers_the_core_spec() -> None:
    assert _fields(schema.TaskSpecIn) == _fields(TaskSpec)


def test_grpc_spec_covers_the_core_spec() -> None:
    names = set(types.TaskSpec.DESCRIPTOR.fields_by_name)
    expected = {f"{f}_json" if f in ("args", "kwargs") else f for f in _fields(TaskSpec)}
    assert names == expected


def test_grpc_task_covers_the_core_task() -> None:
    names = set(types.Task.DESCRIPTOR.fields_by_name)
    # ready_key is the scheduler's queue bookkeeping; the copies it hands out carry None.
    expected = {"result_json" if f == "result" else f for f in _fields(Task) if f != "ready_key"}
    assert names == expected


@pytest.mark.parametrize("result", [None, 0, {"a": [1, 2]}, "text"])
def test_task_round_trips_through_protobuf(result: object) -> None:
    task = msgspec.convert(_sample_task(result), Task)
    wire = types.Task.FromString(convert.task_pb(task).SerializeToString())
    back = convert.task_from_pb(wire)
    # As JSON, the way a REST client sees it: equal documents, field for field.
    assert msgspec.json.decode(msgspec.json.encode(back)) == msgspec.json.decode(
        msgspec.json.encode(task)
    )


def _sample_task(result: object) -> dict[str, object]:
    return {
        "id": "0001",
        "spec": {
            "name": "add",
            "args": [1, 2.5, "x", None, [True]],
            "kwargs": {"k": {"n": 1}},
            "priority": -3,
            "run_at": 1.0,
            "deadline": 2.0,
            "region": "eu",
            "labels": ["gpu"],
            "depends_on": ["0000"],
            "retry": {"max_attempts": 5, "retry_on": ["ValueError"]},
            "timeout": 9.0,
            "idempotency_key": "key",
            "queue": "q",
            "resource": "db",
        },
        "state": "failed",
        "submitted_at": 10.0,
        "attempt": 2,
        "workflow_id": "wf_1",
        "parents": ["0000"],
        "priority": 4,
        "region": "eu",
        "worker": "w1",
        "result": result,
        "error": {"type": "ValueError", "message": "bad", "traceback": "tb", "lost": True},
        "progress": 0.5,
        "progress_message": "half",
        "not_before": 12.0,
        "boost": 7,
        "retry_base": 1,
        "reason": "why",
        "timestamps": {"ready": 11.0, "running": 11.5},
        "history": [
            {
                "attempt": 1,
                "region": "eu",
                "worker": "w1",
                "assigned_at": 11.0,
                "started_at": 11.2,
                "ended_at": 11.4,
                "outcome": "failed",
                "error": {"type": "ValueError", "message": "bad"},
            }
        ],
    }
