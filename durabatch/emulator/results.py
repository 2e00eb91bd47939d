"""Result lines of an ended batch, in each provider's exact shape, generated lazily.

OpenAI and Anthropic results are not reported in input order, as with the real providers
(docs/providers.md, trap 29: join on custom_id); Gemini's are, as documented. Each block of OUTPUT_BLOCK
requests comes out in a shuffled order, fixed by the batch id, so every read of a file (a ranged
resume included) gets the same bytes. Quirk flags on an item make its line go missing, come out
malformed (cut mid-object) or appear twice; the padding knob widens every line.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from durabatch.emulator.batches import DUPLICATE, HOSTILE, MALFORMED, MISSING, STRAY, Batch, Item
from durabatch.emulator.content import expected_chat_response
from durabatch.emulator.errors import anthropic_error_body, gemini_status_name, openai_error_body
from durabatch.emulator.timeline import Phase

__all__ = [
    "HOSTILE_FIELD",
    "anthropic_result_lines",
    "gemini_inline_responses",
    "gemini_result_lines",
    "openai_error_lines",
    "openai_output_lines",
]

EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."
CANCELLED_MESSAGE = "This request was not executed because the batch was cancelled."


T = TypeVar("T")

#: what a `__hostile` line carries, exactly as sent (tests compare stored results with it)
HOSTILE_FIELD = (
    b'"x_emulator_hostile":{"nul":"a\\u0000b","surrogate":"\\ud800","huge":1e400,'
    b'"big":123456789012345678901234567890}'
)

#: results are shuffled within blocks of this many requests (bounded work per block, lazy output)
OUTPUT_BLOCK = 64


def _output_order(batch: Batch, items: Sequence[T]) -> Iterator[T]:
    for start in range(0, len(items), OUTPUT_BLOCK):
        block = list(items[start : start + OUTPUT_BLOCK])
        random.Random(f"{batch.id}:{start}").shuffle(block)
        yield from block


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _encode(batch: Batch, item: Item, line: dict[str, Any], padding: int) -> Iterator[bytes]:
    if item.quirks & MISSING:
        return
    if padding:
        line["x_emulator_padding"] = "x" * padding
    raw = json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode()
    if item.quirks & HOSTILE:
        # Legal JSON text that json.dumps cannot write (a lone surrogate escape, 1e400), at the
        # line's front so every provider's shape keeps its own keys.
        raw = b"{" + HOSTILE_FIELD + b"," + raw[1:]
    if item.quirks & MALFORMED:
        raw = raw[: max(1, len(raw) // 2)]
    end: bytes = batch.extra.get("line_end", b"\n")
    yield raw + end
    if item.quirks & DUPLICATE:
        yield raw + end
    if item.quirks & STRAY:
        id_key = "custom_id" if "custom_id" in line else "key"
        stray = {**line, id_key: f"{item.cid}__not_in_batch"}
        yield json.dumps(stray, separators=(",", ":"), ensure_ascii=False).encode() + end


def _openai_line(batch: Batch, item: Item, response: Any, error: Any) -> dict[str, Any]:
    h = _hash(batch.id, item.cid)
    return {"id": "batch_req_" + h[:32], "custom_id": item.cid, "response": response, "error": error}


def _openai_response(batch: Batch, item: Item) -> dict[str, Any]:
    request_id = "req_" + _hash("r", batch.id, item.cid)[:32]
    if item.error is None:
        body = expected_chat_response("openai", batch.endpoint, item.body)
        return {"status_code": 200, "request_id": request_id, "body": body}
    e = item.error
    body = openai_error_body(e.status, e.message, type_=e.type, param=e.param, code=e.code)
    return {"status_code": e.status, "request_id": request_id, "body": body}


def openai_output_lines(batch: Batch, processed: int, padding: int) -> Iterator[bytes]:
    for item in _output_order(batch, batch.items[:processed]):
        if item.error is None:
            yield from _encode(
                batch, item, _openai_line(batch, item, _openai_response(batch, item), None), padding
            )


def openai_error_lines(batch: Batch, processed: int, padding: int) -> Iterator[bytes]:
    for item in _output_order(batch, batch.items[:processed]):
        if item.error is not None:
            yield from _encode(
                batch, item, _openai_line(batch, item, _openai_response(batch, item), None), padding
            )
    if batch.timeline.phase == Phase.EXPIRED:
        err = {"code": "batch_expired", "message": EXPIRED_MESSAGE}
    elif batch.timeline.phase == Phase.CANCELLED:
        err = {"code": "batch_cancelled", "message": CANCELLED_MESSAGE}
    else:
        return
    for item in _output_order(batch, batch.items[processed:]):
        yield from _encode(batch, item, _openai_line(batch, item, None, dict(err)), padding)


def anthropic_result_lines(batch: Batch, processed: int, padding: int) -> Iterator[bytes]:
    unprocessed = "canceled" if batch.timeline.phase == Phase.CANCELLED else "expired"
    for i in _output_order(batch, range(len(batch.items))):
        item = batch.items[i]
        result: dict[str, Any]
        if i >= processed:
            result = {"type": unprocessed}
        elif item.error is None:
            message = expected_chat_response("anthropic", "/v1/messages", item.body, service_tier="batch")
            result = {"type": "succeeded", "message": message}
        else:
            e = item.error
            result = {
                "type": "errored",
                "error": anthropic_error_body(e.status, e.message, request_id=None),
            }
        yield from _encode(batch, item, {"custom_id": item.cid, "result": result}, padding)


def _gemini_error(item: Item) -> dict[str, Any]:
    assert item.error is not None
    e = item.error
    return {"code": e.status, "message": e.message, "status": gemini_status_name(e.status)}


def gemini_result_lines(batch: Batch, processed: int, padding: int) -> Iterator[bytes]:
    model = batch.model or "models/gemini-2.5-flash"
    for item in batch.items[:processed]:  # Gemini documents input order
        line: dict[str, Any] = {"key": item.cid}
        if item.error is None:
            line["response"] = expected_chat_response("gemini", "", item.body, model=model)
        else:
            line["error"] = _gemini_error(item)
        yield from _encode(batch, item, line, padding)


def gemini_inline_responses(batch: Batch, processed: int) -> list[dict[str, Any]]:
    """Inline results for the Operation (quirks other than MISSING make no sense in a JSON tree)."""
    model = batch.model or "models/gemini-2.5-flash"
    out: list[dict[str, Any]] = []
    for item in batch.items[:processed]:
        if item.quirks & MISSING:
            continue
        entry: dict[str, Any] = {}
        if item.meta is not None:
            entry["metadata"] = item.meta
        if item.error is None:
            entry["response"] = expected_chat_response("gemini", "", item.body, model=model)
        else:
            entry["error"] = _gemini_error(item)
        out.append(entry)
    return out
