"""What may travel as a result: the master's own JSON check, on the value as it will travel.

A result goes to the master as MessagePack, where a tuple becomes an array and an ``int`` or
``str`` subclass (an ``IntEnum``, a ``StrEnum``) its plain value: so they are taken as such,
and the rest is :func:`tierq.core.validate.check_json` with the master's
default limits, the check the master runs on every result (and the SDK on every argument).
A result it refuses fails the attempt here, with the place named, instead of being refused
by the master.
"""

from __future__ import annotations

from ..core.settings import Settings
from ..core.validate import check_json as check_json_value
from ..core.validate import json_error_path
from ..errors import InvalidRequestError

__all__ = ["NotJSONError", "check_json"]

#: The master's default limits (a master configured with larger ones may accept more).
_LIMITS = Settings()


class NotJSONError(TypeError):
    """A value is not JSON-compatible; ``path`` says where (``args[0]["when"]``)."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path} is not JSON-compatible: {why}")
        self.path = path
        self.why = why


def check_json(value: object, path: str = "value") -> None:
    """Raise :class:`NotJSONError` unless ``value`` is made of None, bool, 64-bit int, finite
    float, str, list/tuple and dicts with string keys, within the master's depth and size.

    Datetimes, sets, bytes and arbitrary objects are refused rather than silently converted:
    the other side would receive something other than what was sent.
    """
    depth, budget = _LIMITS.max_json_depth, _LIMITS.max_payload_bytes
    sent = _as_sent(value, depth + 1)
    try:
        check_json_value(sent, path, depth, budget)
    except InvalidRequestError as exc:
        where = json_error_path(sent, path, depth, budget) or path
        raise NotJSONError(where, exc.message.split(": ", 1)[-1]) from None


def _as_sent(value: object, depth: int) -> object:
    """``value`` with its tuples as lists and its int and str subclasses as plain values (what
    MessagePack makes of them), down to ``depth`` levels (deeper is refused by the check
    anyway); the value itself when it holds none."""
    if depth <= 0:
        return value
    kind = type(value)
    if kind is not int and kind is not bool and isinstance(value, int):
        return int(value)
    if kind is not str and isinstance(value, str):
        return str(value)
    if type(value) is tuple or type(value) is list:
        assert isinstance(value, tuple | list)
        items = [_as_sent(item, depth - 1) for item in value]
        same = type(value) is list and all(a is b for a, b in zip(items, value, strict=True))
        return value if same else items
    if type(value) is dict:
        assert isinstance(value, dict)
        out = {key: _as_sent(item, depth - 1) for key, item in value.items()}
        return value if all(out[k] is v for k, v in value.items()) else out
    return value
