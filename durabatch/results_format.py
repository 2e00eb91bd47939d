"""Result rows from the store rendered as each provider's own output lines, or as CSV.

`durabatch results --format jsonl` writes the same line shape the provider's output file has, so
parsers written for the provider's files read durabatch's output unchanged. A row that keeps the
provider's line (`line`, every row ingested since migration 0003) is given back as that line, byte
for byte: `\u0000`, lone surrogates and numbers no float can hold included. Only rows durabatch
made itself (a request without a result, an expiry) are built from the columns.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = ["CSV_COLUMNS", "body_text", "csv_row", "parse_exact", "provider_line", "result_body"]

#: where the response body sits in each provider's result line
_BODY_PATH = {"openai": ("response", "body"), "anthropic": ("result", "message"), "gemini": ("response",)}
_WS = re.compile(r"[ \t\n\r]*")

CSV_COLUMNS = (
    "custom_id",
    "outcome",
    "status_code",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
    "error_code",
    "error_message",
    "body",
)

_ANTHROPIC_TYPES = {
    "succeeded": "succeeded",
    "failed": "errored",
    "expired": "expired",
    "cancelled": "canceled",
}


def provider_line(provider: str, row: Mapping[str, Any]) -> str:
    """The row as one line of the provider's output file (JSON text, no newline)."""
    if row.get("line") is not None:
        return str(row["line"])
    return json.dumps(_built_line(provider, row), separators=(",", ":"))


def body_text(provider: str, row: Mapping[str, Any]) -> str | None:
    """The response body exactly as the provider wrote it (JSON text), or None if there is none."""
    line = row.get("line")
    if line is None:
        return None if row["body"] is None else json.dumps(row["body"], separators=(",", ":"))
    start = 0
    for key in _BODY_PATH.get(provider, ("response", "body")):
        span = _member_span(line, start, key)
        if span is None:
            return None
        start, end = span
    text = line[start:end]
    return None if text == "null" else text


def result_body(provider: str, row: Mapping[str, Any]) -> Any:
    """The response body as Python objects, losing nothing (see `parse_exact`)."""
    if row.get("line") is None:
        return row["body"]
    text = body_text(provider, row)
    return None if text is None else parse_exact(text)


def _number(text: str) -> float | Decimal:
    value = float(text)
    # 1e400 is legal JSON but no float: keep it exact rather than turn it into infinity
    return value if math.isfinite(value) else Decimal(text)


def _integer(text: str) -> int | Decimal:
    # Python refuses to make an int of more than 4,300 digits from text; JSON has no such limit
    return int(text) if len(text) < 4000 else Decimal(text)


#: walks lines to find the body; numbers as in `parse_exact`, so no legal line makes it raise
_DECODER = json.JSONDecoder(parse_float=_number, parse_int=_integer)


def parse_exact(text: str) -> Any:
    """json.loads, except that numbers beyond a float or Python's int-from-text limit become
    Decimal instead of infinity or an error. `\u0000` and lone surrogates decode to the code
    points they name, as they do in json.loads."""
    return _DECODER.decode(text)


def _member_span(text: str, start: int, key: str) -> tuple[int, int] | None:
    """Where the value of `key` lies in the JSON object at text[start:] (the last one, as json.loads)."""
    i = _WS.match(text, start).end()  # type: ignore[union-attr]
    if text[i : i + 1] != "{":
        return None
    i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
    found: tuple[int, int] | None = None
    while text[i : i + 1] == '"':
        name, i = _DECODER.raw_decode(text, i)
        i = _WS.match(text, i).end()  # type: ignore[union-attr]
        if text[i : i + 1] != ":":
            return None
        i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
        _, end = _DECODER.raw_decode(text, i)
        if name == key:
            found = (i, end)
        i = _WS.match(text, end).end()  # type: ignore[union-attr]
        if text[i : i + 1] != ",":
            break
        i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
    return found


def _built_line(provider: str, row: Mapping[str, Any]) -> dict[str, Any]:
    outcome = row["outcome"]
    error = row["error"]
    if provider == "anthropic":
        result: dict[str, Any] = {"type": _ANTHROPIC_TYPES.get(outcome, "errored")}
        if outcome == "succeeded":
            result["message"] = row["body"]
        elif outcome == "failed":
            result["error"] = {"type": "error", "error": error or {}}
        return {"custom_id": row["custom_id"], "result": result}
    if provider == "gemini":
        if outcome == "succeeded":
            return {"key": row["custom_id"], "response": row["body"]}
        return {"key": row["custom_id"], "error": error or {"message": outcome}}
    # OpenAI: HTTP failures sit inside `response`; non-HTTP ones (expiry, cancel) in `error`.
    if row["status_code"] is not None:
        body = row["body"] if outcome == "succeeded" else (row["body"] or {"error": error})
        return {
            "id": f"batch_req_{row['custom_id']}",
            "custom_id": row["custom_id"],
            # OpenAI's lines carry the x-request-id here; the store does not keep it, so it is null.
            "response": {
                "status_code": row["status_code"],
                "request_id": row.get("request_id"),
                "body": body,
            },
            "error": None,
        }
    return {
        "id": f"batch_req_{row['custom_id']}",
        "custom_id": row["custom_id"],
        "response": None,
        "error": error,
    }


def csv_row(provider: str, row: Mapping[str, Any]) -> list[Any]:
    error = row["error"] or {}
    cost = row["cost_usd"]
    return [
        row["custom_id"],
        row["outcome"],
        row["status_code"] if row["status_code"] is not None else "",
        row["input_tokens"],
        row["output_tokens"],
        row["cached_tokens"],
        "" if cost is None else str(cost),
        error.get("code", "") if isinstance(error, dict) else "",
        error.get("message", "") if isinstance(error, dict) else str(error),
        body_text(provider, row) or "",
    ]
