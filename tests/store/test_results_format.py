"""Rendering stored results: the provider's line given back unchanged, the body cut out of it exactly."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from durabatch.results_format import body_text, csv_row, parse_exact, provider_line, result_body


def _row(line: str | None, **fields: Any) -> dict[str, Any]:
    base = {
        "custom_id": "r1",
        "outcome": "succeeded",
        "status_code": 200,
        "body": None,
        "error": None,
        "input_tokens": 1,
        "output_tokens": 2,
        "cached_tokens": 0,
        "cost_usd": None,
        "line": line,
    }
    return {**base, **fields}


def test_the_body_is_cut_out_of_the_line_as_written() -> None:
    body = '{ "t" : "a\\u0000b\\ud800" ,"n":1e400, "i":123456789012345678901234567890,"z":-0.0 }'
    line = f'{{"id":"x", "custom_id":"r1" ,"response": {{"status_code":200,"body":  {body} }},"error":null}}'
    row = _row(line)
    assert provider_line("openai", row) == line
    assert body_text("openai", row) == body
    parsed = result_body("openai", row)
    assert parsed["t"] == "a\x00b\ud800"
    assert parsed["n"] == Decimal("1e400") and parsed["i"] == 123456789012345678901234567890
    assert str(parsed["z"]) == "-0.0"
    assert csv_row("openai", row)[-1] == body


def test_each_provider_has_its_body_path() -> None:
    anthropic = '{"custom_id":"r1","result":{"type":"succeeded","message":{"id":"m","content":[]}}}'
    gemini = '{"key":"r1","response":{"candidates":[]}}'
    assert body_text("anthropic", _row(anthropic)) == '{"id":"m","content":[]}'
    assert body_text("gemini", _row(gemini)) == '{"candidates":[]}'
    errored = '{"custom_id":"r1","result":{"type":"errored","error":{"type":"error"}}}'
    assert body_text("anthropic", _row(errored, outcome="failed")) is None


def test_the_last_of_repeated_keys_wins_as_in_json_loads() -> None:
    line = '{"custom_id":"r1","response":{"body":{"a":1}},"response":{"body":{"a":2}}}'
    assert result_body("openai", _row(line)) == json.loads(line)["response"]["body"] == {"a": 2}


def test_rows_without_a_line_are_built_from_the_columns() -> None:
    missing = _row(None, outcome="failed", status_code=None, error={"code": "missing_result", "message": "m"})
    built = json.loads(provider_line("openai", missing))
    assert built["custom_id"] == "r1" and built["response"] is None
    assert built["error"] == {"code": "missing_result", "message": "m"}
    legacy = _row(None, body={"old": True})
    assert result_body("openai", legacy) == {"old": True}
    assert json.loads(provider_line("openai", legacy))["response"]["body"] == {"old": True}


def test_parse_exact_keeps_what_no_float_or_int_text_limit_can() -> None:
    huge = "9" * 5000
    assert parse_exact(f'{{"a":{huge},"b":1.5}}') == {"a": Decimal(huge), "b": 1.5}
    line = f'{{"custom_id":"r1","x":{huge},"response":{{"body":{{"a":{huge}}}}}}}'
    assert body_text("openai", _row(line)) == f'{{"a":{huge}}}'
    assert result_body("openai", _row(line)) == {"a": Decimal(huge)}
