"""The contract every layer shares: what a `BatchInput` may hold, the status sets, the error names.

The workflow decodes any JSON object into the permissive `BatchInput` (an input that does not
decode would leave it stuck) and then calls `validate_input`, which is total: every field has a
type, a range and an error naming it, unknown fields are refused by name, and the continue-as-new
carry (`state`) is refused from a client. The CLI and `BatchClient` check batch ids with the same
`BATCH_ID_RE`; activities and the workflow name `ApplicationError` types by these constants.

Pure and deterministic (no I/O, clocks or randomness): safe inside workflow code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from durabatch import contract_jobs as jobs
from durabatch.contract_checks import InvalidBatchInput
from durabatch.contract_checks import fail as _fail
from durabatch.contract_checks import seconds as _seconds
from durabatch.contract_checks import text as _text
from durabatch.contract_jobs import (
    DEFAULT_MAX_ROUNDS,
    MAX_ROUNDS,
    MODES,
    PRIORITY_RANGE,
    TENANT_MAX_CHARS,
)
from durabatch.failures import summary_from_failure
from durabatch.models import BatchInput, BatchState, HandlerSpec, RealtimeLimits

__all__ = [
    "AUTHENTICATION_FAILED",
    "BATCH_FAILED",
    "BATCH_ID_IN_USE",
    "BATCH_ID_PATTERN",
    "BATCH_ID_RE",
    "BATCH_STATUSES",
    "COST_LIMIT_EXCEEDED",
    "DEFAULT_HANDLER_ATTEMPTS",
    "DEFAULT_HANDLER_GRACE_SECONDS",
    "DEFAULT_MAX_AGE_SECONDS",
    "DEFAULT_MAX_ROUNDS",
    "DEFAULT_POLL_SCHEDULE",
    "INLINE_REQUESTS_MAX_BYTES",
    "INVALID_INPUT",
    "MAX_AGE_SECONDS_MAX",
    "MAX_HANDLERS",
    "MAX_HANDLER_ATTEMPTS",
    "MAX_HANDLER_GRACE_SECONDS",
    "MAX_POLL_DELAY_SECONDS",
    "MAX_POLL_SCHEDULE_LEN",
    "MAX_ROUNDS",
    "METADATA_MAX_BYTES",
    "METADATA_MAX_KEYS",
    "METADATA_MAX_KEY_CHARS",
    "METADATA_MAX_VALUE_CHARS",
    "MODES",
    "NON_RETRYABLE_ERRORS",
    "PRIORITY_RANGE",
    "PROVIDERS",
    "PROVIDER_LOST_BATCH",
    "PROVIDER_REJECTED",
    "PROVIDER_TERMINAL_STATES",
    "QUOTA_EXCEEDED",
    "TENANT_MAX_CHARS",
    "TERMINAL_BATCH_STATUSES",
    "WEBHOOK_FAILED",
    "BatchConfig",
    "InvalidBatchInput",
    "decode_input",
    "summary_from_failure",
    "validate_batch_id",
    "validate_input",
]

# ---- vocabularies (defined in durabatch.vocabulary) -----------------------------------------

from durabatch.vocabulary import (
    AUTHENTICATION_FAILED,
    BATCH_FAILED,
    BATCH_ID_IN_USE,
    BATCH_STATUSES,
    COST_LIMIT_EXCEEDED,
    INVALID_INPUT,
    NON_RETRYABLE_ERRORS,
    PROVIDER_LOST_BATCH,
    PROVIDER_REJECTED,
    PROVIDER_TERMINAL_STATES,
    PROVIDERS,
    QUOTA_EXCEEDED,
    TERMINAL_BATCH_STATUSES,
    WEBHOOK_FAILED,
)

# ---- bounds ------------------------------------------------------------------------------------

BATCH_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
BATCH_ID_RE = re.compile(BATCH_ID_PATTERN)
_BATCH_ID_RULE = "1-128 characters of letters, digits, '_', '-', '.', ':' (starting with a letter or digit)"

DEFAULT_POLL_SCHEDULE = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0)
DEFAULT_MAX_AGE_SECONDS = 25 * 3600.0
DEFAULT_HANDLER_GRACE_SECONDS = 24 * 3600.0
DEFAULT_HANDLER_ATTEMPTS = 5
#: Provider batches end within 24 h (OpenAI, Anthropic) or 48 h (Gemini); a month is generous and
#: keeps every timer far from datetime's range.
MAX_AGE_SECONDS_MAX = 30 * 24 * 3600.0
MAX_POLL_DELAY_SECONDS = 24 * 3600.0
MAX_POLL_SCHEDULE_LEN = 100
MAX_HANDLER_GRACE_SECONDS = 7 * 24 * 3600.0
MAX_HANDLER_ATTEMPTS = 100
MAX_HANDLERS = 20
METADATA_MAX_KEYS = 64
METADATA_MAX_KEY_CHARS = 128
METADATA_MAX_VALUE_CHARS = 1024
METADATA_MAX_BYTES = 16 * 1024
#: Inline requests travel in the start payload and history; above this they belong in a file.
INLINE_REQUESTS_MAX_BYTES = 256 * 1024
_ENDPOINT_MAX_CHARS = 256
_NAME_MAX_CHARS = 256
_URL_MAX_CHARS = 2048

_INPUT_FIELDS = frozenset(BatchInput.model_fields)
_HANDLER_FIELDS = frozenset(HandlerSpec.model_fields)
_REALTIME_FIELDS = frozenset(RealtimeLimits.model_fields)


@dataclass(frozen=True)
class BatchConfig:
    """A validated `BatchInput`: every value in range, defaults applied."""

    batch_id: str
    provider: str
    endpoint: str
    model: str | None
    poll_schedule: tuple[float, ...]
    max_age_seconds: float
    handlers: tuple[HandlerSpec, ...]
    metadata: dict[str, str] = field(default_factory=dict)
    handler_grace_seconds: float = DEFAULT_HANDLER_GRACE_SECONDS
    max_cost_usd: float | None = None
    priority: int | None = None
    tenant: str | None = None
    max_rounds: int = DEFAULT_MAX_ROUNDS
    mode: str = "batch"
    realtime: RealtimeLimits = field(default_factory=RealtimeLimits)
    deadline_seconds: float | None = None
    push_poll_stretch: float = 1.0
    max_requests_per_shard: int | None = None
    max_bytes_per_shard: int | None = None


def validate_batch_id(batch_id: object) -> str:
    """The batch id, or InvalidBatchInput naming the rule (the CLI and `BatchClient` use it too)."""
    if not isinstance(batch_id, str) or not BATCH_ID_RE.match(batch_id):
        raise _fail("batch_id", f"required; {_BATCH_ID_RULE}")
    return batch_id


def decode_input(raw: object, *, strict: bool = True) -> BatchInput:
    """Any decoded JSON value as a `BatchInput`, or an error naming the first bad or unknown field.

    The workflow takes its input untyped: a field of the wrong type (`"poll_schedule_seconds": "fast"`)
    would otherwise fail decoding before any workflow code runs and leave the workflow stuck.
    `strict=False` (a run continued by the workflow itself) tolerates fields a newer release added.
    """
    if isinstance(raw, BatchInput):
        return raw
    if not isinstance(raw, dict):
        got = "no input" if raw is None else type(raw).__name__
        raise InvalidBatchInput(f"invalid BatchInput: expected a JSON object, got {got}")
    if strict:
        unknown = sorted(str(k) for k in raw if k not in _INPUT_FIELDS)
        if unknown:
            raise _fail(unknown[0], f"unknown field (known: {', '.join(sorted(_INPUT_FIELDS - {'state'}))})")
        realtime = raw.get("realtime")
        extra = (
            sorted(str(k) for k in realtime if k not in _REALTIME_FIELDS)
            if isinstance(realtime, dict)
            else []
        )
        if extra:
            raise _fail(
                f"realtime.{extra[0]}", f"unknown field (known: {', '.join(sorted(_REALTIME_FIELDS))})"
            )
    try:
        return BatchInput.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise _fail(".".join(str(part) for part in err["loc"]) or "?", err["msg"]) from None


def _webhook_url(name: str, url: str | None) -> str:
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail(name, f"a webhook handler needs an absolute http(s) URL with a host, got {url!r}")
    return _text(name, url, _URL_MAX_CHARS) or ""


def _handler(i: int, raw: Mapping[str, Any]) -> HandlerSpec:
    where = f"handlers[{i}]"
    if not isinstance(raw, Mapping):
        raise _fail(where, f"expected an object, got {type(raw).__name__}")
    unknown = sorted(str(k) for k in raw if k not in _HANDLER_FIELDS)
    if unknown:
        raise _fail(f"{where}.{unknown[0]}", f"unknown field (known: {', '.join(sorted(_HANDLER_FIELDS))})")
    try:
        spec = HandlerSpec.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise _fail(".".join([where, *(str(p) for p in err["loc"])]), err["msg"]) from None
    if spec.type == "webhook":
        _webhook_url(f"{where}.url", spec.url)
    elif not spec.name:
        raise _fail(f"{where}.name", "an activity handler needs the activity's name")
    for key in ("name", "task_queue", "secret_env"):
        _text(f"{where}.{key}", getattr(spec, key), _NAME_MAX_CHARS)
    if spec.task_queue is not None and (not spec.task_queue.strip() or spec.task_queue.startswith("/_sys/")):
        # The server refuses such a queue in the schedule command, failing every workflow task.
        raise _fail(f"{where}.task_queue", f"not a usable task queue name: {spec.task_queue!r}")
    attempts = spec.max_attempts
    if attempts is not None and not 1 <= attempts <= MAX_HANDLER_ATTEMPTS:
        raise _fail(f"{where}.max_attempts", f"must be 1..{MAX_HANDLER_ATTEMPTS}, got {attempts}")
    return spec


def _metadata(raw: dict[str, str] | None) -> dict[str, str]:
    meta = dict(raw or {})
    if len(meta) > METADATA_MAX_KEYS:
        raise _fail("metadata", f"at most {METADATA_MAX_KEYS} keys, got {len(meta)}")
    for key, value in meta.items():
        if not key or len(key) > METADATA_MAX_KEY_CHARS:
            raise _fail(f"metadata.{key[:40]}", f"keys are 1-{METADATA_MAX_KEY_CHARS} characters")
        _text(f"metadata.{key}", key, METADATA_MAX_KEY_CHARS)
        _text(f"metadata.{key}", value, METADATA_MAX_VALUE_CHARS)
    size = len(json.dumps(meta, separators=(",", ":")).encode())
    if size > METADATA_MAX_BYTES:
        raise _fail("metadata", f"{size} bytes as JSON, over the {METADATA_MAX_BYTES} limit")
    return meta


def _inline_size(index: int, request: Any) -> int:
    """Bytes of one inline request as standard UTF-8 JSON, or an error naming it."""
    try:
        return len(json.dumps(request, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode())
    except ValueError as exc:  # UnicodeEncodeError is a ValueError too
        what = "a lone surrogate" if isinstance(exc, UnicodeEncodeError) else "NaN or Infinity"
        raise _fail(f"requests[{index}]", f"holds {what}, which standard JSON cannot carry") from None


def _state_allowed(state: BatchState | None, continued: bool) -> None:
    if state is not None and not continued:
        raise _fail(
            "state", "internal: the workflow carries it across continue-as-new; a client must leave it out"
        )


def validate_input(inp: BatchInput, workflow_id: str, *, continued: bool = False) -> BatchConfig:
    """The batch's configuration, or InvalidBatchInput naming the first field that breaks the contract.

    `continued` is true only for a run the workflow itself continued as new (Temporal's
    `continued_run_id`); only such a run may carry `state`.
    """
    _state_allowed(inp.state, continued)
    batch_id = validate_batch_id(inp.batch_id)
    if workflow_id != f"batch-{batch_id}":
        raise _fail("batch_id", f"the workflow id must be 'batch-{batch_id}', got {workflow_id!r}")
    if inp.provider not in PROVIDERS:
        raise _fail("provider", f"unknown provider {inp.provider!r}; expected one of {', '.join(PROVIDERS)}")
    if not inp.endpoint:
        raise _fail("endpoint", "required, e.g. '/v1/chat/completions'")
    endpoint = _text("endpoint", inp.endpoint, _ENDPOINT_MAX_CHARS) or ""
    _text("model", inp.model, _NAME_MAX_CHARS)
    _text("requests_uri", inp.requests_uri, _URL_MAX_CHARS)
    has_inline = inp.requests is not None
    if has_inline == bool(inp.requests_uri) and inp.state is None:
        raise _fail("requests", "give exactly one of 'requests' (inline list) or 'requests_uri'")
    if has_inline and inp.state is None:
        size = sum(_inline_size(i, r) for i, r in enumerate(inp.requests or []))
        if size > INLINE_REQUESTS_MAX_BYTES:
            raise _fail(
                "requests",
                f"inline requests are {size} bytes, over the {INLINE_REQUESTS_MAX_BYTES} limit for workflow "
                "payloads; write them to a JSONL file and pass 'requests_uri'",
            )
    raw_schedule = DEFAULT_POLL_SCHEDULE if inp.poll_schedule_seconds is None else inp.poll_schedule_seconds
    if not 1 <= len(raw_schedule) <= MAX_POLL_SCHEDULE_LEN:
        raise _fail(
            "poll_schedule_seconds", f"give 1 to {MAX_POLL_SCHEDULE_LEN} delays, got {len(raw_schedule)}"
        )
    schedule = tuple(
        _seconds(f"poll_schedule_seconds[{i}]", s, low=0, high=MAX_POLL_DELAY_SECONDS, low_open=True)
        for i, s in enumerate(raw_schedule)
    )
    max_age = _seconds(
        "max_age_seconds",
        DEFAULT_MAX_AGE_SECONDS if inp.max_age_seconds is None else inp.max_age_seconds,
        low=0,
        high=MAX_AGE_SECONDS_MAX,
        low_open=True,
    )
    grace = _seconds(
        "handler_grace_seconds",
        DEFAULT_HANDLER_GRACE_SECONDS if inp.handler_grace_seconds is None else inp.handler_grace_seconds,
        low=0,
        high=MAX_HANDLER_GRACE_SECONDS,
        low_open=False,
    )
    raw_handlers = inp.handlers or []
    if len(raw_handlers) > MAX_HANDLERS:
        raise _fail("handlers", f"at most {MAX_HANDLERS} handlers, got {len(raw_handlers)}")
    handlers = tuple(_handler(i, raw) for i, raw in enumerate(raw_handlers))
    return BatchConfig(
        batch_id=batch_id,
        provider=inp.provider,
        endpoint=endpoint,
        model=inp.model,
        poll_schedule=schedule,
        max_age_seconds=max_age,
        handlers=handlers,
        metadata=_metadata(inp.metadata),
        handler_grace_seconds=grace,
        max_cost_usd=jobs.max_cost(inp.max_cost_usd),
        priority=jobs.priority(inp.priority),
        tenant=jobs.tenant(inp.tenant),
        max_rounds=jobs.max_rounds(inp.max_rounds),
        mode=jobs.mode(inp.mode),
        realtime=jobs.realtime(inp.realtime),
        deadline_seconds=jobs.deadline(inp.deadline_seconds, max_age),
        push_poll_stretch=jobs.stretch(inp.push_poll_stretch),
        max_requests_per_shard=jobs.cap("max_requests_per_shard", inp.max_requests_per_shard, 1),
        max_bytes_per_shard=jobs.cap("max_bytes_per_shard", inp.max_bytes_per_shard, jobs.MIN_SHARD_BYTES),
    )
