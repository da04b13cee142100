from __future__ import annotations

import msgspec
import pytest

from tierq.engine import Codec, encode_json, pack_array
from tierq.errors import InvalidRequestError, PayloadTooLargeError


class Item(msgspec.Struct):
    id: str
    priority: int = 0


class Batch(msgspec.Struct):
    items: list[Item]


def test_round_trip() -> None:
    codec = Codec(Batch)
    value = Batch(items=[Item("a", 3), Item("b")])
    assert codec.decode(codec.encode(value)) == value


def test_encode_over_limit() -> None:
    codec = Codec(Item, max_bytes=16)
    with pytest.raises(PayloadTooLargeError, match="over the limit of 16 bytes"):
        codec.encode(Item("x" * 100))


def test_decode_over_limit_is_refused_before_decoding() -> None:
    codec = Codec(Item, max_bytes=16)
    with pytest.raises(PayloadTooLargeError):
        codec.decode(b"\x00" * 17)


def test_validation_error_names_the_path() -> None:
    codec = Codec(Batch)
    bad = msgspec.msgpack.encode({"items": [{"id": "a", "priority": "high"}]})
    with pytest.raises(InvalidRequestError) as info:
        codec.decode(bad)
    assert info.value.field == "items[0].priority"
    assert "Batch" in info.value.message
    assert not isinstance(info.value, PayloadTooLargeError)


def test_missing_field() -> None:
    with pytest.raises(InvalidRequestError) as info:
        Codec(Item).decode(msgspec.msgpack.encode({"priority": 1}))
    assert "id" in info.value.message


def test_malformed_bytes() -> None:
    with pytest.raises(InvalidRequestError, match="malformed"):
        Codec(Item).decode(b"\xc1")


def test_json_for_subscribers() -> None:
    assert encode_json(Item("a", 2)) == b'{"id":"a","priority":2}'


@pytest.mark.parametrize("n", [0, 1, 15, 16, 65535, 65536])
def test_pack_array_decodes_as_a_list(n: int) -> None:
    enc = msgspec.msgpack.Encoder()
    items = [enc.encode(Item(str(i), i)) for i in range(n)]
    decoded = msgspec.msgpack.decode(pack_array(items), type=list[Item])
    assert len(decoded) == n
    assert decoded == [Item(str(i), i) for i in range(n)]
