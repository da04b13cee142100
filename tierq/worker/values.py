"""What may travel as an argument or a result: JSON values only, checked before they leave."""

from __future__ import annotations

import math

__all__ = ["NotJSONError", "check_json"]

#: Nesting beyond this is almost certainly a cycle or a mistake; msgspec would refuse it anyway.
MAX_DEPTH = 64


class NotJSONError(TypeError):
    """A value is not JSON-compatible; ``path`` says where (``args[0]["when"]``)."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path} is not JSON-compatible: {why}")
        self.path = path
        self.why = why


def check_json(value: object, path: str = "value") -> None:
    """Raise :class:`NotJSONError` unless ``value`` is made of None, bool, int, float, str,
    list/tuple and dicts with string keys.

    Datetimes, sets, bytes and arbitrary objects are refused rather than silently converted:
    the other side would receive something other than what was sent.
    """
    _check(value, path, 0)


def _check(value: object, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise NotJSONError(path, f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotJSONError(path, f"{value!r} has no JSON form")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotJSONError(path, f"key {key!r} is a {type(key).__name__}, not a str")
            _check(item, f"{path}[{key!r}]", depth + 1)
        return
    raise NotJSONError(path, f"a {type(value).__qualname__} ({_short(value)})")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
