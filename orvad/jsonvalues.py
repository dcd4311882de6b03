"""JSON numbers as the API's integers: JSON has one number type, so `2` and `2.0` are the same integer
(as JSON Schema's "integer" says); `true` is not a number, and `2.5` is not an integer."""

from __future__ import annotations


def json_int(value: object) -> int | None:
    """The integer a JSON value denotes, or None when it denotes none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None
