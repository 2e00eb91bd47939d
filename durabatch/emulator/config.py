"""Emulator configuration: timings, limits and keys, fixed when the server starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["EmulatorConfig"]

MB = 1024 * 1024


@dataclass
class EmulatorConfig:
    """Everything the emulator needs to know at start.

    Timings are real seconds. Each batch copies them when it is created, so changing a running
    emulator's config only affects later batches.
    """

    api_keys: list[str] = field(default_factory=lambda: ["test-key"])
    validating_seconds: float = 0.5
    ms_per_request: float = 1.0
    finalizing_seconds: float = 0.5
    expire_after_seconds: float = 86400.0
    #: OpenAI: requests per batch input file (real limit 50,000)
    openai_max_requests: int = 50_000
    #: OpenAI: batch input file size; larger files fail validation with `file_too_large`
    openai_max_batch_file_bytes: int = 200 * MB
    #: OpenAI: any upload larger than this is refused at upload time with 400 "File is too large."
    openai_max_upload_bytes: int = 512 * MB
    #: OpenAI: enqueued prompt tokens per model across unfinished batches; None = unlimited
    openai_enqueued_token_limit: int | None = None
    #: Anthropic: requests per batch (real limit 100,000)
    anthropic_max_requests: int = 100_000
    #: Anthropic: create body size; larger gets 413 request_too_large
    anthropic_max_body_bytes: int = 256 * MB
    #: Gemini: inline request body size (real limit 20 MB)
    gemini_max_inline_bytes: int = 20 * MB
    #: Gemini answers a bad key with 400 INVALID_ARGUMENT/API_KEY_INVALID in production; 401 by default
    #: here because clients and tests treat it as an authentication failure either way.
    gemini_bad_key_status: int = 401
    #: Extra bytes added to every output/result line (a top-level `x_emulator_padding` string), so a
    #: benchmark can produce a very large output file from a modest batch.
    output_padding_bytes: int = 0
    #: Send signed batch-ended webhooks (Standard Webhooks, OpenAI and Gemini shapes) here
    webhook_url: str | None = None
    #: the signing secret (`whsec_<base64>`); required with webhook_url
    webhook_secret: str | None = None
    #: hostile delivery: never send (the receiver must rely on polls), send late, send copies
    webhook_drop: bool = False
    webhook_delay_seconds: float = 0.0
    webhook_duplicates: int = 0
    #: real-time endpoints: calls per window per provider (past it: 429 with Retry-After); None = unlimited
    realtime_rpm: int | None = None
    #: real-time endpoints: tokens (prompt + reply, as the answer's usage counts them) per window
    #: per provider; None = unlimited
    realtime_tpm: int | None = None
    #: the rate-limit window in seconds: a minute, as the providers count; tests shorten it
    realtime_window_seconds: float = 60.0
    #: Where batches and files are kept across restarts (loaded at start, saved after each change
    #: and at shutdown); None keeps them in memory only.
    state_dir: Path | None = None
