"""What a provider's webhook says, reduced to what durabatch acts on: which provider batch ended.

Both providers send Standard Webhooks deliveries with a thin JSON body; the batch is fetched
again by the poll the event triggers, so nothing in the body is trusted beyond the batch's id.
- OpenAI: `{"id": "evt_...", "type": "batch.completed", "created_at": ..., "data": {"id": "batch_..."}}`,
  types `batch.completed`, `batch.failed`, `batch.expired`, `batch.cancelled`.
- Gemini (project webhooks): the same envelope with `data.name` (`batches/...`) or `data.id`; types
  `batch.succeeded`, `batch.failed`, `batch.expired` (one of Google's samples says
  `batch.completed`: accepted too); there is no cancelled event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BATCH_ENDED_EVENTS", "WEBHOOK_PROVIDERS", "ProviderEvent", "parse_event"]

BATCH_ENDED_EVENTS: dict[str, frozenset[str]] = {
    "openai": frozenset({"batch.completed", "batch.failed", "batch.expired", "batch.cancelled"}),
    "gemini": frozenset({"batch.succeeded", "batch.completed", "batch.failed", "batch.expired"}),
}
WEBHOOK_PROVIDERS = tuple(BATCH_ENDED_EVENTS)
#: ids longer than this are not a provider's: refused rather than looked up or stored
_MAX_ID_CHARS = 256


@dataclass(frozen=True)
class ProviderEvent:
    provider: str
    #: the delivery's `webhook-id`: the same for every redelivery of one event
    event_id: str
    type: str
    provider_batch_id: str


def parse_event(provider: str, event_id: str, body: Any) -> ProviderEvent | None:
    """The batch-ended event in a verified body, or None for any other event (acknowledged and
    ignored: a provider may send event types durabatch does not act on)."""
    if not isinstance(body, dict):
        return None
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in BATCH_ENDED_EVENTS.get(provider, ()):
        return None
    data = body.get("data")
    if not isinstance(data, dict):
        return None
    batch = data.get("id") if provider == "openai" else data.get("name") or data.get("id")
    if not isinstance(batch, str) or not batch or len(batch) > _MAX_ID_CHARS:
        return None
    if provider == "gemini" and not batch.startswith("batches/"):
        batch = f"batches/{batch}"
    return ProviderEvent(provider=provider, event_id=event_id, type=kind, provider_batch_id=batch)
