"""The request-line validator and the `requests_uri` policy, as pure functions (the refusals
end to end are in tests/bad_input/)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from durabatch.requests_file import InvalidRequestLine, InvalidRequests, RequestsValidator
from durabatch.settings import load_settings
from durabatch.staging import RequestsUriRefused, check_requests_uri

ENDPOINT = "/v1/chat/completions"


def line(custom_id: str = "r1", content: str = '"hi"', model: str = "gpt-4o-mini") -> bytes:
    return (
        f'{{"custom_id": "{custom_id}", "body": {{"model": "{model}", '
        f'"messages": [{{"role": "user", "content": {content}}}]}}}}'
    ).encode()


def test_a_good_line_is_encoded_once_with_its_size_and_shard() -> None:
    v = RequestsValidator("openai", ENDPOINT, None)
    row = v.feed(1, line())
    assert row is not None
    assert json.loads(row.body) == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    assert row.byte_size == len(row.body) and row.shard == 0
    assert v.feed(2, b"   ") is None
    assert v.finish("f") and v.model == "gpt-4o-mini" and v.count == 1


def test_unicode_that_postgres_can_store_passes() -> None:
    v = RequestsValidator("openai", ENDPOINT, None)
    row = v.feed(1, line(content='"caf\\u00e9 \\ud83d\\ude00 back\\\\u0000slash"'))
    assert row is not None and row.body.find("café 😀".encode()) >= 0


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("NaN", "NaN is not standard JSON"),
        ("-Infinity", "-Infinity is not standard JSON"),
        ("1e400", "out of range"),
        ('"\\udc00"', "lone surrogate"),
        ('"a\\u0000b"', "NUL"),
    ],
)
def test_unsendable_values_name_line_and_field(content: str, reason: str) -> None:
    v = RequestsValidator("openai", ENDPOINT, None)
    v.feed(1, line("r0"))
    with pytest.raises(InvalidRequestLine) as err:
        v.feed(2, line(content=content))
    assert err.value.line_no == 2 and err.value.field == "body.messages[0].content"
    assert reason in str(err.value) and str(err.value).startswith(
        "line 2, field 'body.messages[0].content': "
    )


def test_one_line_number_in_a_json_error() -> None:
    with pytest.raises(InvalidRequestLine) as err:
        RequestsValidator("openai", ENDPOINT, None).feed(7, b'{"custom_id": ')
    assert str(err.value).startswith("line 7: not valid JSON") and "line 1" not in str(err.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"custom_id": ', "line 3: not valid JSON at column 15: expecting value"),
        (b'{"custom_id": "a\x0bb"}', "line 3: not valid JSON at column 17: invalid control character"),
        (b'{"custom_id": "a"} {"b": 1}', "line 3: not valid JSON at column 20: extra data"),
        (
            b"{'custom_id': 'a'}",
            "line 3: not valid JSON at column 2: expecting property name enclosed in double quotes",
        ),
    ],
)
def test_a_json_error_gives_the_file_line_and_a_column(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidRequestLine) as err:
        RequestsValidator("openai", ENDPOINT, None).feed(3, raw)
    assert str(err.value) == message


def test_batch_wide_rules() -> None:
    with pytest.raises(InvalidRequests, match="endpoint"):
        RequestsValidator("openai", "/v1/nope", None)
    v = RequestsValidator("gemini", "generateContent", None)
    v.feed(1, b'{"key": "k", "request": {"contents": []}}')
    with pytest.raises(InvalidRequests, match="Gemini batch needs a model"):
        v.finish("f")
    with pytest.raises(InvalidRequests, match="no requests"):
        RequestsValidator("openai", ENDPOINT, None).finish("requests_uri 'x'")


def test_model_conflict_and_duplicate_ids() -> None:
    v = RequestsValidator("openai", ENDPOINT, "gpt-4o-mini")
    v.feed(1, line("a"))
    with pytest.raises(InvalidRequestLine, match="line 2, field 'custom_id': duplicate"):
        v.feed(2, line("a"))
    with pytest.raises(InvalidRequestLine, match="line 3, field 'model'"):
        v.feed(3, line("b", model="gpt-4o"))


def test_requests_uri_policy(tmp_path: Path) -> None:
    inside = tmp_path / "reqs.jsonl"
    assert check_requests_uri(str(inside), roots=[tmp_path], http_allowed=True) == inside.resolve()
    assert check_requests_uri(f"file://{inside}", roots=[tmp_path], http_allowed=True) == inside.resolve()
    with pytest.raises(RequestsUriRefused, match="DURABATCH_REQUESTS_ROOTS"):
        check_requests_uri("/etc/passwd", roots=[tmp_path], http_allowed=True)
    with pytest.raises(RequestsUriRefused, match="DURABATCH_REQUESTS_ROOTS"):
        check_requests_uri(f"{tmp_path}/../../etc/passwd", roots=[tmp_path], http_allowed=True)
    with pytest.raises(RequestsUriRefused, match="absolute"):
        check_requests_uri("reqs.jsonl", roots=[tmp_path], http_allowed=True)
    assert (
        check_requests_uri("https://x.test/r.jsonl", roots=[], http_allowed=True) == "https://x.test/r.jsonl"
    )
    with pytest.raises(RequestsUriRefused, match="DURABATCH_REQUESTS_HTTP=false"):
        check_requests_uri("https://x.test/r.jsonl", roots=[], http_allowed=False)
    with pytest.raises(RequestsUriRefused, match="unsupported scheme"):
        check_requests_uri("s3://bucket/r.jsonl", roots=[tmp_path], http_allowed=True)


def test_requests_settings(tmp_path: Path) -> None:
    default = load_settings({"DURABATCH_DATA_DIR": str(tmp_path)})
    assert default.requests_root_paths() == [tmp_path.resolve(), Path.cwd().resolve()]
    assert default.requests_http
    custom = load_settings(
        {"DURABATCH_REQUESTS_ROOTS": f"{tmp_path}{os.pathsep}/srv/in", "DURABATCH_REQUESTS_HTTP": "false"}
    )
    assert custom.requests_root_paths() == [tmp_path.resolve(), Path("/srv/in")]
    assert not custom.requests_http
