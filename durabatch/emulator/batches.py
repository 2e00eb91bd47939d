"""The provider-neutral batch: its requests, their fixed outcomes, and its timeline.

Each request's outcome (success, per-request error, or an output quirk) is decided once at
creation from markers and batch faults, so results never change between downloads. Prefix sums
make a status read O(1) whatever the batch size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from durabatch.emulator.content import Provider, expected_usage
from durabatch.emulator.faults import FaultSpec
from durabatch.emulator.timeline import Phase, Timeline

__all__ = [
    "DUPLICATE",
    "MALFORMED",
    "MISSING",
    "Batch",
    "Item",
    "RequestError",
    "batch_markers",
    "item_from_marker",
]

MISSING = 1
MALFORMED = 2
DUPLICATE = 4
#: the line carries text no jsonb column can hold: `\u0000`, a lone surrogate, huge numbers
HOSTILE = 8
#: a second line follows for a custom_id that is not in the batch
STRAY = 16

_FAIL_MARKER = re.compile(r"__fail_(\d{3})")
_BATCH_MARKER = re.compile(
    r"__(token_limit_exceeded|all_fail|stuck_finalizing|missing_results|"
    r"malformed_output_lines|duplicate_output_lines|request_errors|crlf_lines|"
    r"hostile_output_lines|stray_output_lines|no_output_file|unknown_status)"
)

_REQUEST_MESSAGES = {
    400: ("Invalid request (emulated per-request failure).", "invalid_request_error", "invalid_value"),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    404: ("The model does not exist or you do not have access to it.", "invalid_request_error", None),
    429: ("Rate limit reached for requests (emulated).", "requests", "rate_limit_exceeded"),
    500: ("The server had an error processing your request (emulated).", "server_error", None),
}


@dataclass(frozen=True, slots=True)
class RequestError:
    """A per-request HTTP failure, rendered in the provider's own error shape."""

    status: int
    message: str
    type: str
    code: str | None = None
    param: str | None = None

    @classmethod
    def for_status(cls, status: int) -> RequestError:
        message, type_, code = _REQUEST_MESSAGES.get(
            status, ("Emulated per-request failure.", "server_error", None)
        )
        return cls(status, message, type_, code)


@dataclass(slots=True)
class Item:
    cid: str
    body: dict[str, Any]
    error: RequestError | None = None
    quirks: int = 0
    #: Gemini inline requests: the request's own `metadata`, echoed in its response
    meta: dict[str, Any] | None = None


def item_from_marker(cid: str, body: dict[str, Any], error: RequestError | None = None) -> Item:
    """An item whose failures and quirks come from markers in its custom_id / key."""
    item = Item(cid, body, error)
    m = _FAIL_MARKER.search(cid)
    if m:
        item.error = RequestError.for_status(int(m.group(1)))
    if "__missing" in cid:
        item.quirks |= MISSING
    if "__malformed" in cid:
        item.quirks |= MALFORMED
    if "__duplicate" in cid:
        item.quirks |= DUPLICATE
    if "__hostile" in cid:
        item.quirks |= HOSTILE
    if "__stray" in cid:
        item.quirks |= STRAY
    return item


def batch_markers(*texts: str | None) -> list[FaultSpec]:
    """Batch faults named by `__<fault>` markers in metadata values, displayName or a custom_id."""
    names: set[str] = set()
    for t in texts:
        if t:
            names.update(_BATCH_MARKER.findall(t))
    return [FaultSpec(fault=n) for n in sorted(names)]


@dataclass
class Batch:
    id: str
    provider: Provider
    #: OpenAI endpoint; "/v1/messages" for Anthropic; ":generateContent" for Gemini
    endpoint: str
    model: str | None
    created_at: float
    items: list[Item]
    timeline: Timeline
    metadata: dict[str, Any] | None = None
    #: provider-specific fields (input_file_id, display_name, inline flag, ...)
    extra: dict[str, Any] = field(default_factory=dict)
    #: OpenAI `errors.data` entries once the batch fails
    errors: list[dict[str, Any]] = field(default_factory=list)
    fail_prefix: list[int] = field(default_factory=list)
    in_tok_prefix: list[int] = field(default_factory=list)
    out_tok_prefix: list[int] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None
    files_made: bool = False

    def apply_faults(self, specs: list[FaultSpec]) -> None:
        for s in specs:
            if s.fault == "all_fail":
                for it in self.items:
                    it.error = RequestError.for_status(s.request_status)
            elif s.fault == "request_errors":
                for it in self.items[: s.requests]:
                    it.error = RequestError.for_status(s.request_status)
            elif s.fault == "missing_results":
                for it in self.items[: s.requests]:
                    it.quirks |= MISSING
            elif s.fault == "malformed_output_lines":
                for it in self.items[: s.requests]:
                    it.quirks |= MALFORMED
            elif s.fault == "duplicate_output_lines":
                for it in self.items[: s.requests]:
                    it.quirks |= DUPLICATE
            elif s.fault == "hostile_output_lines":
                for it in self.items[: s.requests]:
                    it.quirks |= HOSTILE
            elif s.fault == "stray_output_lines":
                for it in self.items[: s.requests]:
                    it.quirks |= STRAY
            elif s.fault in ("no_output_file", "unknown_status"):
                self.extra[s.fault] = True
            elif s.fault == "crlf_lines":
                self.extra["line_end"] = b"\r\n"
            elif s.fault == "stuck_finalizing":
                self.timeline.stuck_finalizing = True
            elif s.fault == "expire_after":
                self.timeline.expires_at = self.created_at + s.seconds
            elif s.fault == "token_limit_exceeded":
                self.fail_token_limit(2_000_000)

    def fail_token_limit(self, limit: int) -> None:
        """OpenAI's refusal for queue room: the batch fails at validation, nothing is run."""
        self.fail_with(
            "token_limit_exceeded",
            f"Enqueued token limit reached for {self.model} in organization org-emulator. "
            f"Limit: {limit:,} enqueued tokens. Please try again once some in_progress "
            "batches have been completed.",
        )

    def fail_with(self, code: str, message: str, line: int | None = None, param: str | None = None) -> None:
        self.errors.append({"code": code, "message": message, "param": param, "line": line})
        self.timeline.fail_validation = True

    def index(self) -> None:
        """Compute prefix sums; call once the items' outcomes are final."""
        fails, tin, tout = [0], [0], [0]
        for it in self.items:
            if it.error is None:
                u = expected_usage(self.provider, self.endpoint, it.body)
                tin.append(tin[-1] + u.input_tokens)
                tout.append(tout[-1] + u.output_tokens)
                fails.append(fails[-1])
            else:
                tin.append(tin[-1])
                tout.append(tout[-1])
                fails.append(fails[-1] + 1)
        self.fail_prefix, self.in_tok_prefix, self.out_tok_prefix = fails, tin, tout

    @property
    def n(self) -> int:
        return len(self.items)

    def progress(self, now: float) -> tuple[Phase, int]:
        """(phase, requests processed) at `now`."""
        k = self.timeline.processed(now)
        return self.timeline.phase, k

    def failed_among(self, k: int) -> int:
        return self.fail_prefix[k]

    def estimated_input_tokens(self) -> int:
        return sum(expected_usage(self.provider, self.endpoint, it.body).input_tokens for it in self.items)
