"""Validation of a decoded `BatchInput`: pure, deterministic, and naming the bad field.

The workflow accepts any JSON object (every field optional) because an input that fails to decode
leaves a workflow stuck; this module then turns it into a `BatchConfig` or an error message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from pydantic import ValidationError

from durabatch.models import (
    DEFAULT_MAX_AGE_SECONDS,
    DEFAULT_POLL_SCHEDULE,
    INLINE_REQUESTS_MAX_BYTES,
    PROVIDERS,
    BatchInput,
    HandlerSpec,
)

__all__ = [
    "DEFAULT_HANDLER_GRACE_SECONDS",
    "BatchConfig",
    "InvalidBatchInput",
    "decode_input",
    "validate_input",
]

DEFAULT_HANDLER_GRACE_SECONDS = 24 * 3600.0
_BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class InvalidBatchInput(ValueError):
    pass


@dataclass(frozen=True)
class BatchConfig:
    batch_id: str
    provider: str
    endpoint: str
    model: str | None
    poll_schedule: tuple[float, ...]
    max_age_seconds: float
    handlers: tuple[HandlerSpec, ...]
    metadata: dict[str, str] = field(default_factory=dict)
    handler_grace_seconds: float = DEFAULT_HANDLER_GRACE_SECONDS


def _fail(field_name: str, message: str) -> InvalidBatchInput:
    return InvalidBatchInput(f"invalid BatchInput field {field_name!r}: {message}")


def decode_input(raw: object) -> BatchInput:
    """Any decoded JSON value as a `BatchInput`, or an error naming the first field of the wrong type.

    The workflow takes its input untyped: a field of the wrong type (`"poll_schedule_seconds": "fast"`)
    would otherwise fail decoding before any workflow code runs and leave the workflow stuck.
    """
    if isinstance(raw, BatchInput):
        return raw
    if not isinstance(raw, dict):
        got = "no input" if raw is None else type(raw).__name__
        raise InvalidBatchInput(f"invalid BatchInput: expected a JSON object, got {got}")
    try:
        return BatchInput.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise _fail(".".join(str(part) for part in err["loc"]) or "?", err["msg"]) from None


def validate_input(inp: BatchInput, workflow_id: str) -> BatchConfig:
    if not inp.batch_id or not _BATCH_ID.match(inp.batch_id):
        raise _fail("batch_id", "required; 1-128 characters of letters, digits, '_', '-', '.', ':'")
    if workflow_id != f"batch-{inp.batch_id}":
        raise _fail("batch_id", f"the workflow id must be 'batch-{inp.batch_id}', got {workflow_id!r}")
    if inp.provider not in PROVIDERS:
        raise _fail("provider", f"unknown provider {inp.provider!r}; expected one of {', '.join(PROVIDERS)}")
    if not inp.endpoint:
        raise _fail("endpoint", "required, e.g. '/v1/chat/completions'")
    has_inline = inp.requests is not None
    if has_inline == bool(inp.requests_uri) and inp.state is None:
        raise _fail("requests", "give exactly one of 'requests' (inline list) or 'requests_uri'")
    if has_inline and inp.state is None:
        size = len(json.dumps(inp.requests, separators=(",", ":")))
        if size > INLINE_REQUESTS_MAX_BYTES:
            raise _fail(
                "requests",
                f"inline requests are {size} bytes, over the {INLINE_REQUESTS_MAX_BYTES} limit for workflow "
                "payloads; write them to a JSONL file and pass 'requests_uri'",
            )
    schedule = tuple(inp.poll_schedule_seconds or DEFAULT_POLL_SCHEDULE)
    if any(s <= 0 for s in schedule):
        raise _fail("poll_schedule_seconds", "every delay must be positive")
    max_age = DEFAULT_MAX_AGE_SECONDS if inp.max_age_seconds is None else inp.max_age_seconds
    if max_age <= 0:
        raise _fail("max_age_seconds", "must be positive")
    handlers: list[HandlerSpec] = []
    for i, raw in enumerate(inp.handlers or []):
        try:
            spec = HandlerSpec.model_validate(raw)
        except ValidationError as exc:
            raise _fail(f"handlers[{i}]", exc.errors()[0]["msg"]) from None
        if spec.type == "webhook" and not (spec.url and spec.url.startswith(("http://", "https://"))):
            raise _fail(f"handlers[{i}].url", "a webhook handler needs an http(s) URL")
        if spec.type == "activity" and not spec.name:
            raise _fail(f"handlers[{i}].name", "an activity handler needs the activity's name")
        handlers.append(spec)
    grace = DEFAULT_HANDLER_GRACE_SECONDS if inp.handler_grace_seconds is None else inp.handler_grace_seconds
    return BatchConfig(
        batch_id=inp.batch_id,
        provider=inp.provider,
        endpoint=inp.endpoint,
        model=inp.model,
        poll_schedule=schedule,
        max_age_seconds=max_age,
        handlers=tuple(handlers),
        metadata=dict(inp.metadata or {}),
        handler_grace_seconds=max(0.0, grace),
    )
