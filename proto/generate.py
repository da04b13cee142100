"""Regenerate the gRPC stubs of ``proto/tierq/v1/*.proto`` and
``proto/externalscaler/*.proto`` into ``tierq/api/proto/``.

protoc writes ``from tierq.v1 import types_pb2``, the import path of the .proto files; the
stubs live in the ``tierq.api.proto`` package, so those imports are rewritten to relative
ones. ``--check`` regenerates into a temporary folder and fails if any committed stub differs
(``tests/api/test_proto.py`` runs it). The generator's own version stamps (grpcio-tools'
``GRPC_GENERATED_VERSION``, protoc's "Protobuf Python Version" and runtime check) are
compared with the numbers blanked out: a stub is stale when its messages or services differ
from the ``.proto`` files, not when another patch release of the generator wrote it. The
version that ``make proto`` uses is pinned in ``requirements-dev.txt``.

Usage: ``python proto/generate.py [--check]`` (``make proto``).
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "proto"
PACKAGE = ROOT / "tierq" / "api" / "proto"
INIT = '"""Generated gRPC stubs of the tierq.v1 API (``make proto``); do not edit."""\n'
#: Folders of .proto files under proto/: tierq's API, and the KEDA external scaler it serves.
_FOLDERS = ("tierq/v1", "externalscaler")
_IMPORT = re.compile(r"^from (tierq\.v1|externalscaler) import ", re.MULTILINE)
# Version stamps the generator writes, blanked before comparing (see the module docstring).
_STAMPS = (
    re.compile(r"^(GRPC_GENERATED_VERSION = )'[^']*'", re.MULTILINE),
    re.compile(r"^(# Protobuf Python Version: ).*$", re.MULTILINE),
    re.compile(r"(ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,)[\s\d,]*"),
)


def generate(out: Path, sources: Path = SOURCES) -> list[Path]:
    """Write the stubs of the ``.proto`` files under ``sources`` into ``out``."""
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(
        str(p.relative_to(sources))
        for folder in _FOLDERS
        for p in (sources / folder).glob("*.proto")
    )
    include = str(Path(grpc_tools.__file__).parent / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{sources}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *protos,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        written = [out / "__init__.py"]
        out.mkdir(parents=True, exist_ok=True)
        written[0].write_text(INIT)
        generated = (p for folder in _FOLDERS for p in (Path(tmp) / folder).iterdir())
        for src in sorted(generated):
            dest = out / src.name
            dest.write_text(_IMPORT.sub("from . import ", src.read_text()))
            written.append(dest)
    return written


def check(sources: Path = SOURCES, package: Path = PACKAGE) -> list[str]:
    """Names of committed stubs that differ from freshly generated ones (or are missing)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: p.read_text() for p in generate(Path(tmp), sources)}
    stale = [
        name
        for name, text in fresh.items()
        if _normalise(_read(package / name)) != _normalise(text)
    ]
    extra = [p.name for p in package.glob("*.py*") if p.is_file() and p.name not in fresh]
    return sorted(stale + extra)


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def _normalise(text: str | None) -> str | None:
    """The stub with the generator's version numbers blanked."""
    if text is None:
        return None
    for stamp in _STAMPS:
        text = stamp.sub(r"\1<version>", text)
    return text


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = check()
        if stale:
            print(
                "stale gRPC stubs: the generated messages or services differ from"
                " the .proto files (run `make proto`): " + ", ".join(stale),
                file=sys.stderr,
            )
            return 1
        return 0
    for path in generate(PACKAGE):
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
