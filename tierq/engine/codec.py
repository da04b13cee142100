"""msgspec encoding of what travels on NATS and into the log, with size limits."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import msgspec

from ..errors import InvalidRequestError, PayloadTooLargeError

__all__ = ["DEFAULT_MAX_BYTES", "Codec", "encode_json", "pack_array"]

T = TypeVar("T")

#: Default size limit of one encoded message: the embedded server's ``max_payload``.
DEFAULT_MAX_BYTES = 8 * 1024 * 1024

# msgspec ends validation messages with "- at `$.items[0].priority`".
_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")

_json_encoder = msgspec.json.Encoder()


class Codec(Generic[T]):
    """MessagePack encoder/decoder for one type, refusing payloads over ``max_bytes``.

    Decoding errors become :class:`InvalidRequestError` whose ``field`` is the path msgspec
    reports (``items[0].priority``), so a caller can tell the user what to fix.
    """

    __slots__ = ("_decoder", "_encoder", "max_bytes", "name")

    def __init__(
        self, type_: type[T], *, max_bytes: int = DEFAULT_MAX_BYTES, name: str = ""
    ) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(type_)
        self.max_bytes = max_bytes
        self.name = name or getattr(type_, "__name__", str(type_))

    def encode(self, value: T) -> bytes:
        data = self._encoder.encode(value)
        self._check_size(len(data))
        return data

    def decode(self, data: bytes | bytearray | memoryview) -> T:
        self._check_size(len(data))
        try:
            return self._decoder.decode(data)
        except msgspec.ValidationError as exc:
            raise _invalid(self.name, exc) from exc
        except msgspec.DecodeError as exc:
            raise InvalidRequestError(f"{self.name}: malformed message: {exc}") from exc

    def _check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise PayloadTooLargeError(
                f"{self.name} of {size} bytes is over the limit of {self.max_bytes} bytes"
            )


def _invalid(name: str, exc: msgspec.ValidationError) -> InvalidRequestError:
    text = str(exc)
    match = _PATH.search(text)
    field = match.group("path").lstrip(".") if match else None
    return InvalidRequestError(f"{name}: {text}", field=field or None)


def encode_json(value: Any) -> bytes:
    """JSON for what external subscribers read (lifecycle events, the live feed)."""
    return _json_encoder.encode(value)


def pack_array(items: Sequence[bytes]) -> bytes:
    """A msgpack array made of already-encoded items, without decoding them.

    The master encodes each event once; a log message is then just the array header
    followed by the items, and replay decodes it as ``list[Event]`` in one call.
    """
    n = len(items)
    if n < 16:
        header = bytes((0x90 | n,))
    elif n < 0x10000:
        header = b"\xdc" + n.to_bytes(2, "big")
    elif n < 0x100000000:
        header = b"\xdd" + n.to_bytes(4, "big")
    else:  # pragma: no cover - msgpack cannot express it
        raise ValueError(f"a msgpack array holds at most 2**32-1 items, got {n}")
    return header + b"".join(items)


def array_header_size(n: int) -> int:
    """Bytes :func:`pack_array` adds in front of ``n`` items."""
    return 1 if n < 16 else 3 if n < 0x10000 else 5
