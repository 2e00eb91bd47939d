"""One result line as the row `results` stores (durabatch.store.results.RESULT_COLUMNS): written
by ingest for batch output files and by real time for synchronous answers, the same way."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from durabatch.providers.base import ResultLine

__all__ = ["CostFn", "result_row"]

#: (input tokens, cached tokens, output tokens) -> USD, for a succeeded result
CostFn = Callable[[int, int, int], Decimal]

_MAX_COUNT = 2**31 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


def result_row(
    batch_id: str, round_: int, line: ResultLine, raw: str | None, cost_fn: CostFn | None
) -> tuple[Any, ...]:
    """The row for `line`, its provider line text being `raw`; counts a column cannot hold are 0,
    an impossible HTTP status is NULL, and the error is made storable as jsonb."""
    input_tokens = _count(line.input_tokens)
    output_tokens = _count(line.output_tokens)
    cached_tokens = _count(line.cached_tokens)
    cost: Decimal | None = None
    if cost_fn is not None and line.outcome == "succeeded":
        cost = cost_fn(input_tokens, cached_tokens, output_tokens)
    return (
        batch_id,
        line.custom_id,
        round_,
        line.outcome,
        line.status_code if line.status_code is None or 0 <= line.status_code < 1000 else None,
        raw,
        None if line.error is None else _storable(line.error),
        input_tokens,
        output_tokens,
        cached_tokens,
        cost,
    )


def _count(value: int) -> int:
    """A token count the integer columns can hold; a provider's absurd count is not worth a wedge."""
    return value if 0 <= value <= _MAX_COUNT else 0


def _storable(error: dict[str, Any]) -> Any:
    """The error object as jsonb can hold it. The provider's exact words are in `line`; this copy
    serves queries, so NUL, lone surrogates and non-finite numbers are replaced, not refused."""
    try:
        text = json.dumps(error, ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
        if "\\u0000" not in text:
            return error
    except (ValueError, UnicodeEncodeError):
        pass
    return _clean(error)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value.replace("\x00", "\ufffd"))
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    if isinstance(value, dict):
        return {_clean(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
