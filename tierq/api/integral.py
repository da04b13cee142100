"""Whole-number floats where the schema says integer: ``{"priority": 3.0}`` is ``3``.

JSON has one number type, and JSON Schema's ``integer`` is any number without a fractional
part, so a schema-valid request may carry ``3.0`` for an integer field (schemathesis sends
such requests). msgspec decodes strictly and refuses them. When that is the only complaint,
the body is decoded again as plain JSON, the integral floats at integer-typed positions
(and only there: a task's own arguments are left exactly as sent) become ints, and the
result is converted strictly. ``3.5`` and ``"3"`` are still refused.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from msgspec import inspect as mi

__all__ = ["INT_GOT_FLOAT", "convert_integral"]

T = TypeVar("T")

#: How msgspec words the error this module handles.
INT_GOT_FLOAT = "Expected `int`, got `float`"


def convert_integral(body: bytes, typ: type[T]) -> T:
    """``body`` as ``typ``, with integral floats accepted for integer fields.

    Raises:
        msgspec.ValidationError: anything else wrong (a fractional float included).
    """
    value = msgspec.json.decode(body)
    return msgspec.convert(_walk(value, mi.type_info(typ)), typ)


def _walk(value: Any, info: mi.Type) -> Any:
    if isinstance(info, mi.Metadata):
        return _walk(value, info.type)
    if isinstance(info, mi.IntType):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    if isinstance(info, mi.UnionType):
        if isinstance(value, float) and any(isinstance(t, mi.FloatType) for t in info.types):
            return value  # a float is fine as it is
        for member in info.types:
            if isinstance(member, mi.IntType | mi.StructType | mi.ListType | mi.DictType):
                return _walk(value, member)
        return value
    if isinstance(info, mi.StructType) and isinstance(value, dict):
        fields = {f.encode_name: f.type for f in info.fields}
        return {k: _walk(v, fields[k]) if k in fields else v for k, v in value.items()}
    if isinstance(info, mi.ListType | mi.VarTupleType | mi.SetType) and isinstance(value, list):
        return [_walk(v, info.item_type) for v in value]
    if isinstance(info, mi.TupleType) and isinstance(value, list):
        return [_walk(v, t) for v, t in zip(value, info.item_types, strict=False)]
    if isinstance(info, mi.DictType) and isinstance(value, dict):
        return {k: _walk(v, info.value_type) for k, v in value.items()}
    return value
