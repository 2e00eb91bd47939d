"""Result rows from the store rendered as each provider's own output lines, or as CSV.

`durabatch results --format jsonl` writes the same line shape the provider's output file has, so
parsers written for the provider's files read durabatch's output unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["CSV_COLUMNS", "csv_row", "provider_line"]

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


def provider_line(provider: str, row: Mapping[str, Any]) -> dict[str, Any]:
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


def csv_row(row: Mapping[str, Any]) -> list[Any]:
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
        json.dumps(row["body"], separators=(",", ":")) if row["body"] is not None else "",
    ]
