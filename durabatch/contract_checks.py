"""The checks each `BatchInput` field is put through (durabatch/contract.py applies them): one
error type, and messages that name the field and the rule.

Pure: workflow code runs them.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["InvalidBatchInput", "encodable", "fail", "seconds", "span", "text"]


class InvalidBatchInput(ValueError):
    """A `BatchInput` that breaks the contract; the message names the field."""


def fail(field_name: str, message: str) -> InvalidBatchInput:
    text = f"invalid BatchInput field {field_name!r}: {message}"
    # A lone surrogate in the message would make the failure itself impossible to encode.
    return InvalidBatchInput(text.encode("utf-8", "backslashreplace").decode("utf-8"))


def seconds(name: str, value: Any, *, low: float, high: float, low_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise fail(name, f"must be a finite number of seconds, got {value!r}")
    if (value <= low if low_open else value < low) or value > high:
        bracket = "(" if low_open else "["
        raise fail(
            name, f"must be in {bracket}{low:g}, {high:.0f}] seconds (up to {span(high)}), got {value:g}"
        )
    return float(value)


def span(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} seconds"


def text(name: str, value: str | None, limit: int) -> str | None:
    if value is not None and len(value) > limit:
        raise fail(name, f"at most {limit} characters, got {len(value)}")
    if value is not None and "\x00" in value:
        # PostgreSQL text and jsonb cannot hold NUL: the batch row could never be written.
        raise fail(name, "must not contain NUL (\\u0000)")
    if value is not None and not encodable(value):
        raise fail(name, "must be valid Unicode (it holds a lone surrogate such as \\ud800)")
    return value


def encodable(value: str) -> bool:
    """Payloads are UTF-8 JSON: a lone surrogate decodes from JSON but can never be sent on."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
