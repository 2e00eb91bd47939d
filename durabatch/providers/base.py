"""The one interface every provider client implements, and the small types it speaks.

The workflow never knows which provider it runs on: activities call these methods and store what
they return. Nothing here knows about Temporal or the store.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from durabatch.contract import PROVIDER_TERMINAL_STATES

# The ref travels in workflow state, so it is one of the shared models; providers speak it.
from durabatch.models import ProviderBatchRef

__all__ = [
    "TERMINAL_STATES",
    "BatchProvider",
    "ProviderBatchRef",
    "ProviderBatchSummary",
    "ProviderLimits",
    "ProviderState",
    "ProviderStatus",
    "RequestCounts",
    "RequestLine",
    "ResultCursor",
    "ResultLine",
    "ResultOutcome",
    "ShardSubmission",
    "token_count",
]

#: durabatch's view of a provider batch's state (providers map their own statuses into these).
ProviderState = Literal[
    "submitted", "in_progress", "finalizing", "completed", "failed", "expired", "cancelled"
]
#: the states in which a provider batch has ended: the contract's set, under the name providers use
TERMINAL_STATES: frozenset[str] = PROVIDER_TERMINAL_STATES

ResultOutcome = Literal["succeeded", "failed", "expired", "cancelled"]


@dataclass(frozen=True)
class ProviderLimits:
    """What one provider batch may hold; staging plans shards from these."""

    max_requests: int
    max_bytes: int
    max_line_bytes: int
    #: endpoints this provider accepts in batch mode, as durabatch names them (e.g. "/v1/chat/completions")
    endpoints: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class RequestLine:
    """One staged request: the normalised body is the provider's request body (OpenAI `body`,
    Anthropic `params`, Gemini `request`)."""

    custom_id: str
    body: dict[str, Any]


@dataclass(frozen=True)
class ShardSubmission:
    """Everything `submit` needs for one provider batch.

    `tag` is stable across retries of the same submit (durabatch ids, no secrets): providers that
    carry metadata store it there, and `find_submitted(tag)` looks for it.
    `requests` is called anew on each attempt and streams the shard from the store.
    """

    tag: str
    batch_id: str
    shard: int
    round: int
    endpoint: str
    model: str | None
    request_count: int
    byte_size: int
    requests: Callable[[], AsyncIterator[RequestLine]]
    #: when the first submit attempt was recorded (unix seconds); Anthropic, which has no metadata,
    #: matches batches created after it.
    attempt_started_at: float = 0.0
    #: provider batch ids already owned by other shards or batches. Anthropic's `find_submitted`
    #: matches by creation time and request count only, so it must never claim (or cancel as a
    #: duplicate) a batch listed here; pass every id the store knows for this provider.
    exclude_batch_ids: frozenset[str] = frozenset()
    #: an input file an earlier attempt of this submit uploaded: create the batch from it instead of
    #: uploading the shard again (a retried create must leave no orphan files at the provider)
    input_file_id: str | None = None
    #: awaited with the file id right after an upload, before the create call: the caller records it
    #: so that a retry after a failed create reuses the file
    on_uploaded: Callable[[str], Awaitable[None]] | None = None


class RequestCounts(BaseModel):
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    processing: int = 0


class ProviderStatus(BaseModel):
    state: ProviderState
    provider_status: str
    counts: RequestCounts = Field(default_factory=RequestCounts)
    #: where results are: OpenAI output/error file ids, Anthropic results_url, Gemini responses file.
    output_location: str | None = None
    error_location: str | None = None
    #: batch-level failure (validation, quota), with the provider's code and message.
    failure_code: str | None = None
    failure_message: str | None = None
    #: True when a failed batch may be submitted again later (OpenAI token_limit_exceeded).
    retry_later: bool = False

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass(frozen=True, slots=True)
class ProviderBatchSummary:
    """One batch of the account as the provider's batch list shows it (`list_batches`): enough
    for the account sweep to tell whether its status changed, nothing more."""

    provider_batch_id: str
    #: mapped as `status()` maps it
    state: ProviderState
    #: the provider's own word, as `ProviderStatus.provider_status` (what the store records)
    provider_status: str
    #: unix seconds; None when the provider's answer carried no readable time
    created_at: float | None


class ResultCursor(BaseModel):
    """A resume point in a provider's result stream: the part (OpenAI: 0 output file, 1 error file)
    and the number of bytes and complete lines already consumed in it."""

    # frozen: a cursor is a value
    model_config = ConfigDict(frozen=True)

    part: int = 0
    offset: int = 0
    lines: int = 0


@dataclass(slots=True)
class ResultLine:
    """One result as a provider client read it. A plain dataclass, not a model: ingest makes one
    per line (millions per file) and never serialises it, so validation would be pure cost."""

    custom_id: str
    outcome: ResultOutcome
    status_code: int | None = None
    body: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    #: the provider's line exactly as received (JSON text), stored so results read back unchanged;
    #: None for results that were not one JSON line (Gemini inline responses, unparseable lines).
    raw: str | None = None
    #: (part, offset, lines) of the position just after this line: `cursor` as a plain tuple.
    #: Validating a ResultCursor for every line cost 1.5 us of the ~7 us that parsing one takes,
    #: and ingest needs the model only for the last line of each chunk it commits.
    position: tuple[int, int, int] = (0, 0, 0)

    @property
    def cursor(self) -> ResultCursor:
        """The position just after this line, for resuming a broken or crashed read."""
        part, offset, lines = self.position
        return ResultCursor(part=part, offset=offset, lines=lines)

    @cursor.setter
    def cursor(self, value: ResultCursor) -> None:
        self.position = (value.part, value.offset, value.lines)


def token_count(value: object) -> int:
    """A token count from a provider's usage object; what is not a finite number (null, a string,
    1e400) counts 0, so one absurd result line cannot stop the ingest of the others."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return 0


@runtime_checkable
class BatchProvider(Protocol):
    """A provider's batch API. Every method is safe to retry; errors are durabatch.providers.errors."""

    name: str
    limits: ProviderLimits
    #: the `provider_status` of a batch just created: the store records it at submit, so the
    #: account sweep sees no change in a batch that has not moved since
    created_status: str

    async def submit(self, shard: ShardSubmission) -> ProviderBatchRef:
        """Upload the shard's requests and create one provider batch tagged with `shard.tag`."""
        ...

    async def find_submitted(self, shard: ShardSubmission) -> ProviderBatchRef | None:
        """The batch an earlier attempt of `submit(shard)` created, if any (the idempotent-retry path)."""
        ...

    async def status(self, ref: ProviderBatchRef) -> ProviderStatus: ...

    def results(
        self, ref: ProviderBatchRef, status: ProviderStatus, resume_from: ResultCursor | None = None
    ) -> AsyncIterator[ResultLine]:
        """Stream every result line of a terminal batch, starting after `resume_from`."""
        ...

    def list_batches(self, since: float | None, max_pages: int) -> AsyncIterator[ProviderBatchSummary]:
        """The account's batches, newest first, created at or after `since` (unix seconds; None:
        all), reading at most `max_pages` pages of the provider's list."""
        ...

    async def cancel(self, ref: ProviderBatchRef) -> None:
        """Ask the provider to cancel; cancelling a batch that already ended is not an error."""
        ...

    async def realtime(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """One bare real-time call of the same endpoint, its answer's body. Real-time runs use
        `durabatch.providers.realtime.RealtimeClient`, which adds the limits, the retries and the
        batch result line."""
        ...
