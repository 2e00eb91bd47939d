"""No secret leaks: API keys and webhook secrets appear in no workflow history, table or log line.

Batches run on the real stack (dev server, PostgreSQL, emulator, in-process worker) with
recognisable fake keys: OpenAI, Anthropic and Gemini batches that complete and deliver signed
webhooks, a webhook that refuses the signature, and an OpenAI batch with a wrong key (401). Then the
keys and the secret are searched for in every history fetched from the server (and each workflow's
description), every row of every table, the JSON log stream of `configure_logging` at DEBUG, the raw
log records (before any masking), and the process's stdout/stderr.

Webhook signatures end to end: a real delivery is captured at a receiver, then altered, replayed
late, or checked with the wrong secret, and `verify_signature` (and the receiver) reject each one.

The keys are built from parts at run time, so no file holds anything shaped like a real key.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import temporalio.activity
import temporalio.workflow
from aiohttp import web
from google.protobuf.json_format import MessageToJson
from temporalio.client import Client, WorkflowHandle

from durabatch.models import BatchSummary
from durabatch.settings import API_KEY_ENV
from durabatch.store.pool import Pool
from durabatch.telemetry.logs import configure_logging
from durabatch.webhook_receiver import WebhookReceiver
from durabatch.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookVerificationError,
    sign,
    verify_signature,
)
from tests.stack import Stack, chat_requests, emulator_config, environment, worker_stack

_TOKEN = uuid.uuid4().hex  # 32 hex digits, unique to this run
OPENAI_KEY = "-".join(["sk", "FAKEKEY", "chaos", "4b1d", _TOKEN[:24]])
ANTHROPIC_KEY = "-".join(["sk", "ant", "FAKEKEY", "chaos", _TOKEN[4:28]])
GEMINI_KEY = "".join(["AIza", "FAKEKEYchaos", _TOKEN[8:32]])
WRONG_KEY = "-".join(["sk", "WRONGKEY", "chaos", _TOKEN[2:26]])
WEBHOOK_SECRET = "-".join(["whsec", "FAKESECRET", "chaos", _TOKEN[6:30]])
SECRET_ENV = "DURABATCH_TEST_SECRETS_WEBHOOK_SECRET"

SECRETS = {
    "openai key": OPENAI_KEY,
    "anthropic key": ANTHROPIC_KEY,
    "gemini key": GEMINI_KEY,
    "wrong key": WRONG_KEY,
    "webhook secret": WEBHOOK_SECRET,
}


def needles() -> dict[str, str]:
    """Each secret, and a 16-character piece of its random middle (a partly masked or cut copy
    still leaks; a provider's own masking keeps only the last 4 characters)."""
    found: dict[str, str] = {}
    for name, value in SECRETS.items():
        found[name] = value
        found[f"{name} (middle)"] = value[-20:-4]
    return found


def assert_nowhere(haystack: str, where: str) -> None:
    leaks = [name for name, needle in needles().items() if needle in haystack]
    assert not leaks, f"{', '.join(leaks)} found in {where}"


def new_id() -> str:
    return uuid.uuid4().hex[:10]


# ---------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def log_stream(fake_keys: None) -> Iterator[io.StringIO]:
    """The worker's own log configuration (JSON lines, DEBUG) into a buffer, for the whole module."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    saved_info = (
        temporalio.activity.logger.activity_info_on_message,
        temporalio.workflow.logger.workflow_info_on_message,
    )
    stream = io.StringIO()
    # as in production: the API key values in the environment now are masked in every line
    configure_logging("DEBUG", stream=stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    (
        temporalio.activity.logger.activity_info_on_message,
        temporalio.workflow.logger.workflow_info_on_message,
    ) = saved_info


@pytest.fixture(scope="module")
def fake_keys() -> Iterator[None]:
    env = {
        API_KEY_ENV["openai"]: OPENAI_KEY,
        API_KEY_ENV["anthropic"]: ANTHROPIC_KEY,
        API_KEY_ENV["gemini"]: GEMINI_KEY,
        SECRET_ENV: WEBHOOK_SECRET,
    }
    with environment(env):
        yield


@pytest.fixture(scope="module")
async def secret_stack(
    temporal_client: Client, pool: Pool, database_url: str, fake_keys: None, log_stream: io.StringIO
) -> AsyncIterator[Stack]:
    config = emulator_config(api_keys=[OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY])
    async with worker_stack(temporal_client, pool, database_url, config, queue_prefix="secrets") as stack:
        yield stack


class RawReceiver(WebhookReceiver):
    """A WebhookReceiver that also keeps every request's raw body and headers."""

    def __init__(self, secret: str | None = None, **kwargs: Any) -> None:
        super().__init__(secret, **kwargs)
        self.raw: list[tuple[bytes, dict[str, str]]] = []

    async def __aenter__(self) -> RawReceiver:
        await super().__aenter__()
        return self

    async def _handle(self, request: web.Request) -> web.Response:
        self.raw.append((await request.read(), dict(request.headers)))
        return await super()._handle(request)


# ------------------------------------------------------------------------------------------ helpers


async def dump_database(pool: Pool) -> dict[str, str]:
    """Every row of every table in the database, as text, by table name."""
    tables = await pool.fetch(
        """SELECT table_schema, table_name FROM information_schema.tables
            WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"""
    )
    dump: dict[str, str] = {}
    for t in tables:
        name = f'"{t["table_schema"]}"."{t["table_name"]}"'
        rows = await pool.fetch(f"SELECT t::text AS row FROM {name} t")  # names from the catalog
        dump[name] = "\n".join(r["row"] for r in rows)
    return dump


def _with_payloads_decoded(value: Any, out: list[str], *, encoded: bool = False) -> None:
    """Every string in a proto's JSON form; payload bytes (`data`, `metadata` values), which the
    JSON form holds in base64, are added decoded too."""
    if isinstance(value, dict):
        for key, item in value.items():
            _with_payloads_decoded(item, out, encoded=encoded or key in ("data", "metadata"))
    elif isinstance(value, list):
        for item in value:
            _with_payloads_decoded(item, out, encoded=encoded)
    elif isinstance(value, str):
        out.append(value)
        if encoded:
            try:
                out.append(base64.b64decode(value, validate=True).decode("utf-8", "replace"))
            except ValueError:
                pass


async def history_text(handle: WorkflowHandle[Any, Any]) -> str:
    """The workflow's full history from the server, plus its description (memo, search attributes,
    Web UI details): the JSON text and every payload in it decoded."""
    history = await handle.fetch_history()
    description = await handle.describe()
    raw = [history.to_json(), MessageToJson(description.raw_description)]
    out: list[str] = list(raw)
    for text in raw:
        _with_payloads_decoded(json.loads(text), out)
    return "\n".join(out)


def records_text(records: list[logging.LogRecord]) -> str:
    """Log records before any formatter ran: messages, args, extras and exceptions in the raw."""
    parts = []
    for r in records:
        parts.append(r.getMessage())
        parts.append(repr(vars(r)))
        if r.exc_info and r.exc_info[1] is not None:
            parts.append(logging.Formatter().formatException(r.exc_info))
    return "\n".join(parts)


def anthropic_requests(n: int) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"a{i}",
            "params": {
                "model": "claude-haiku-4-5",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": f"hi {i}"}],
            },
        }
        for i in range(n)
    ]


def gemini_requests(n: int) -> list[dict[str, Any]]:
    return [
        {"key": f"g{i}", "request": {"contents": [{"role": "user", "parts": [{"text": f"hello {i}"}]}]}}
        for i in range(n)
    ]


# -------------------------------------------------------------------------------------------- tests


async def test_keys_and_secrets_appear_nowhere(
    secret_stack: Stack,
    log_stream: io.StringIO,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = secret_stack
    caplog.set_level(logging.DEBUG)
    # configure_logging (module fixture) replaced the root handlers; pytest adds caplog's per test.
    handles: list[WorkflowHandle[Any, BatchSummary]] = []
    async with RawReceiver(secret=WEBHOOK_SECRET) as good, RawReceiver(secret="not-the-secret") as bad:
        signed = {"type": "webhook", "url": good.url, "secret_env": SECRET_ENV}
        refused = {"type": "webhook", "url": bad.url, "secret_env": SECRET_ENV, "max_attempts": 1}
        handles.append(
            await stack.start(
                batch_id=new_id(),
                provider="openai",
                endpoint="/v1/chat/completions",
                requests=chat_requests(5),
                handlers=[signed, refused],
                handler_grace_seconds=0,
            )
        )
        handles.append(
            await stack.start(
                batch_id=new_id(),
                provider="anthropic",
                endpoint="/v1/messages",
                requests=anthropic_requests(4),
                handlers=[signed],
            )
        )
        handles.append(
            await stack.start(
                batch_id=new_id(),
                provider="gemini",
                endpoint="generateContent",
                model="gemini-2.5-flash",
                requests=gemini_requests(4),
                handlers=[signed],
            )
        )
        summaries = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 60)

        # a wrong key: the emulator answers 401, the batch fails before any provider batch exists
        monkeypatch.setenv(API_KEY_ENV["openai"], WRONG_KEY)
        wrong = await stack.start(
            batch_id=new_id(),
            provider="openai",
            endpoint="/v1/chat/completions",
            requests=chat_requests(3),
            handlers=[signed],
        )
        handles.append(wrong)
        wrong_summary = await asyncio.wait_for(wrong.result(), 30)
        monkeypatch.setenv(API_KEY_ENV["openai"], OPENAI_KEY)

    # the batches did what they should, so the search below looks at real traffic
    assert [s.status for s in summaries] == ["completed"] * 3
    assert summaries[0].handlers[0].status == "succeeded" and summaries[0].handlers[1].status == "failed"
    assert "401" in (summaries[0].handlers[1].error or "")
    assert wrong_summary.status == "failed" and "401" in (wrong_summary.failure_reason or "")
    assert len(good.accepted) == 4 and bad.accepted == [] and bad.rejected
    assert all(SIGNATURE_HEADER in headers for _, headers in good.raw + bad.raw)

    # 1. every workflow history, fetched from the server, and each workflow's description
    for handle in handles:
        text = await history_text(handle)
        assert handle.id in text and SECRET_ENV in text  # the variable's name travels, never its value
        assert_nowhere(text, f"the history of {handle.id}")

    # 2. every row of every table
    dump = await dump_database(stack.pool)
    assert {'"public"."batches"', '"public"."requests"', '"public"."results"'} <= set(dump)
    assert all(h.id in dump['"public"."batches"'] for h in handles)
    for table, rows in dump.items():
        assert_nowhere(rows, f"table {table}")

    # 3. the logs: the JSON stream the worker writes, the raw records, and stdout/stderr
    stream_text = log_stream.getvalue()
    assert all(h.id in stream_text for h in handles), "the log stream missed the batches"
    assert_nowhere(stream_text, "the JSON log stream")
    assert caplog.records and any(r.levelno == logging.DEBUG for r in caplog.records)
    assert_nowhere(records_text(caplog.records), "the raw log records")
    assert_nowhere(caplog.text, "caplog's text")
    out, err = capfd.readouterr()
    assert_nowhere(out + err, "stdout/stderr")

    # 4. what reached the webhook receivers
    for body, headers in good.raw + bad.raw:
        assert_nowhere(body.decode() + json.dumps(headers), "a webhook delivery")
    # and what the workflows returned
    for summary in [*summaries, wrong_summary]:
        assert_nowhere(summary.model_dump_json(), f"the summary of {summary.batch_id}")


async def test_a_real_delivery_rejects_tampering_and_replay(secret_stack: Stack) -> None:
    async with RawReceiver(secret=WEBHOOK_SECRET) as receiver:
        batch_id = new_id()
        summary = await asyncio.wait_for(
            secret_stack.run(
                batch_id=batch_id,
                provider="openai",
                endpoint="/v1/chat/completions",
                requests=chat_requests(3),
                handlers=[{"type": "webhook", "url": receiver.url, "secret_env": SECRET_ENV}],
            ),
            60,
        )
        assert summary.status == "completed" and summary.handlers[0].status == "succeeded"
        assert len(receiver.raw) == 1 and len(receiver.accepted) == 1
        body, headers = receiver.raw[0]
        timestamp = headers[TIMESTAMP_HEADER]
        signature = headers[SIGNATURE_HEADER]

        # the delivery carries a unix timestamp and an HMAC-SHA256 over "<timestamp>.<body>"
        assert re.fullmatch(r"v1=[0-9a-f]{64}", signature)
        assert signature == sign(WEBHOOK_SECRET, int(timestamp), body)
        assert headers.get("Idempotency-Key") == f"batch-{batch_id}:handler:0"
        verify_signature(WEBHOOK_SECRET, body, timestamp, signature)

        altered = body.replace(b'"succeeded":3', b'"succeeded":4')
        assert altered != body
        with pytest.raises(WebhookVerificationError, match="signature mismatch"):
            verify_signature(WEBHOOK_SECRET, altered, timestamp, signature)
        with pytest.raises(WebhookVerificationError, match="signature mismatch"):
            verify_signature(WEBHOOK_SECRET, body + b" ", timestamp, signature)
        # replayed ten minutes later
        with pytest.raises(WebhookVerificationError, match="replayed"):
            verify_signature(WEBHOOK_SECRET, body, timestamp, signature, now=int(timestamp) + 600)
        # replayed with a fresh timestamp but the old signature
        fresh = str(int(timestamp) + 60)
        with pytest.raises(WebhookVerificationError, match="signature mismatch"):
            verify_signature(WEBHOOK_SECRET, body, fresh, signature, now=int(fresh))
        # someone without the secret
        with pytest.raises(WebhookVerificationError, match="signature mismatch"):
            verify_signature("-".join(["whsec", "guess"]), body, timestamp, signature)
        with pytest.raises(WebhookVerificationError, match="missing"):
            verify_signature(WEBHOOK_SECRET, body, None, signature)

        # the receiver itself: the same delivery sent again, tampered or stale, is refused
        async with httpx.AsyncClient() as http:
            send = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
            replayed = await http.post(receiver.url, content=body, headers=send)
            tampered = await http.post(receiver.url, content=altered, headers=send)
            stale = await http.post(
                receiver.url, content=body, headers={**send, TIMESTAMP_HEADER: str(int(timestamp) - 600)}
            )
            unsigned = await http.post(
                receiver.url,
                content=body,
                headers={k: v for k, v in send.items() if k not in (SIGNATURE_HEADER, TIMESTAMP_HEADER)},
            )
        codes = (replayed.status_code, tampered.status_code, stale.status_code, unsigned.status_code)
        assert codes == (401, 401, 401, 401)
        assert "replayed" in replayed.text
        assert len(receiver.accepted) == 1
        assert len(receiver.rejected) == 4


async def test_the_search_sees_inside_payloads() -> None:
    """The history search is not blind: a secret inside a payload (base64 in the JSON) is found."""
    from temporalio.api.common.v1 import Payloads

    from durabatch.converter import DATA_CONVERTER

    payloads = Payloads(payloads=await DATA_CONVERTER.encode([{"metadata": {"note": WEBHOOK_SECRET}}]))
    text = MessageToJson(payloads)
    assert WEBHOOK_SECRET not in text  # base64 in the raw JSON form
    out: list[str] = []
    _with_payloads_decoded(json.loads(text), out)
    with pytest.raises(AssertionError, match="webhook secret"):
        assert_nowhere("\n".join(out), "a payload")
