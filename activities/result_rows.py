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
    """The row for `line`, its provider line text being `raw`; counts a column cannot hold are 0
    (a provider's absurd count is not worth a wedge),
    an impossible HTTP status is NULL, and the error is made storable as jsonb."""
    # inline, not a call per count: this runs once per result line (a call is ~5% of a row)
    input_tokens = line.input_tokens
    if not 0 <= input_tokens <= _MAX_COUNT:
        input_tokens = 0
    output_tokens = line.output_tokens
    if not 0 <= output_tokens <= _MAX_COUNT:
        output_tokens = 0
    cached_tokens = line.cached_tokens
    if not 0 <= cached_tokens <= _MAX_COUNT:
        cached_tokens = 0
    outcome = line.outcome
    cost: Decimal | None = None
    if cost_fn is not None and outcome == "succeeded":
        cost = cost_fn(input_tokens, cached_tokens, output_tokens)
    status_code = line.status_code
    error = line.error
    return (
        batch_id,
        line.custom_id,
        round_,
        outcome,
        status_code if status_code is None or 0 <= status_code < 1000 else None,
        raw,
        None if error is None else _storable(error),
        input_tokens,
        output_tokens,
        cached_tokens,
        cost,
    )


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
