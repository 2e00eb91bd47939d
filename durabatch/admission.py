"""Admission under a provider account's queue limits: the rule, in one place.

A provider account has room for so much queued work at once: OpenAI counts enqueued input tokens
per model (a batch over the limit fails with `token_limit_exceeded`), Anthropic queued requests,
Gemini concurrent batch jobs. Before a shard is submitted it asks its account for room (its
*demand*: estimated input tokens, requests, one batch) and waits while there is none; the room is
given back when the provider batch ends.

Order: waiting shards are considered by priority (1 first, unset = 3), then by how much room
their tenant already holds (fewest grants first, so one tenant cannot take an account by queueing
first), then by arrival. The first that does not fit stops the granting (no smaller shard jumps a
bigger one, so none starves). A shard bigger than a whole limit is granted when the account is
otherwise empty: it can never fit, and the provider is the judge.

Pure (pydantic and the standard library): the account workflow runs it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ACCOUNT_WORKFLOW_TYPE",
    "DEFAULT_PRIORITY",
    "GRANT_SIGNAL",
    "REFUSED_SIGNAL",
    "RELEASE_SIGNAL",
    "REQUEST_SIGNAL",
    "AccountLimits",
    "AccountState",
    "AdmissionRequest",
    "Demand",
    "account_workflow_id",
    "grantable",
    "lowered_token_limit",
    "waiting_reason",
]

DEFAULT_PRIORITY = 3
#: the account workflow's type, and the signals between it and the batch workflows
ACCOUNT_WORKFLOW_TYPE = "AccountWorkflow"
REQUEST_SIGNAL = "request"
RELEASE_SIGNAL = "release"
REFUSED_SIGNAL = "refused"
GRANT_SIGNAL = "admission"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class AccountLimits(_Model):
    """What one account may hold queued at the provider; None (or a model missing from
    `queue_tokens`) means no limit of that kind."""

    queue_tokens: dict[str, int] = Field(default_factory=dict)
    queue_requests: int | None = None
    max_concurrent_batches: int | None = None

    def applies_to(self, model: str | None) -> bool:
        return (
            self.queue_requests is not None
            or self.max_concurrent_batches is not None
            or (model is not None and model in self.queue_tokens)
        )


class Demand(_Model):
    model: str | None = None
    tokens: int = 0
    requests: int = 0


class AdmissionRequest(_Model):
    """A shard asking for room; `key` is unique per shard and round of a batch."""

    key: str
    workflow_id: str
    shard: int
    round: int
    demand: Demand
    priority: int | None = None
    tenant: str | None = None
    #: arrival order, set by the account workflow
    seq: int = 0


class AccountState(_Model):
    limits: AccountLimits = Field(default_factory=AccountLimits)
    granted: dict[str, AdmissionRequest] = Field(default_factory=dict)
    waiting: list[AdmissionRequest] = Field(default_factory=list)
    seq: int = 0
    grants_made: int = 0


def account_workflow_id(provider: str, task_queue: str) -> str:
    """One account workflow per provider and worker fleet (task queue): the workers that submit
    a provider's batches are the ones that share its account."""
    return f"durabatch-account-{provider}@{task_queue}"


def _in_use(state: AccountState) -> tuple[dict[str, int], int, int]:
    tokens: dict[str, int] = {}
    requests = 0
    for grant in state.granted.values():
        if grant.demand.model is not None:
            tokens[grant.demand.model] = tokens.get(grant.demand.model, 0) + grant.demand.tokens
        requests += grant.demand.requests
    return tokens, requests, len(state.granted)


def _shortfall(state: AccountState, req: AdmissionRequest) -> str | None:
    """Why `req` does not fit now, or None if it does."""
    limits = state.limits
    tokens, requests, batches = _in_use(state)
    model = req.demand.model
    if model is not None and model in limits.queue_tokens:
        limit = limits.queue_tokens[model]
        if tokens.get(model, 0) + req.demand.tokens > limit:
            return f"{tokens.get(model, 0):,} of {limit:,} enqueued tokens for {model} in use, needs {req.demand.tokens:,}"
    if limits.queue_requests is not None and requests + req.demand.requests > limits.queue_requests:
        return (
            f"{requests:,} of {limits.queue_requests:,} queued requests in use, needs {req.demand.requests:,}"
        )
    if limits.max_concurrent_batches is not None and batches + 1 > limits.max_concurrent_batches:
        return f"{batches} of {limits.max_concurrent_batches} concurrent batches running"
    return None


def _order(state: AccountState) -> list[AdmissionRequest]:
    held: dict[str | None, int] = {}
    for grant in state.granted.values():
        held[grant.tenant] = held.get(grant.tenant, 0) + 1
    return sorted(
        state.waiting,
        key=lambda r: (
            r.priority if r.priority is not None else DEFAULT_PRIORITY,
            held.get(r.tenant, 0),
            r.seq,
        ),
    )


def grantable(state: AccountState) -> list[AdmissionRequest]:
    """Grant what fits, in order; moves them from `waiting` to `granted` and returns them."""
    granted_now: list[AdmissionRequest] = []
    while state.waiting:
        head = _order(state)[0]
        if _shortfall(state, head) is not None and state.granted:
            break
        state.waiting.remove(head)
        state.granted[head.key] = head
        state.grants_made += 1
        granted_now.append(head)
    return granted_now


def waiting_reason(state: AccountState, key: str) -> str | None:
    """Why a waiting shard waits: its place in line and the limit in the way."""
    order = _order(state)
    for place, req in enumerate(order):
        if req.key == key:
            blocking = _shortfall(state, order[0]) or "waiting for room"
            ahead = f"{place} ahead; " if place else ""
            return f"waiting for admission: {ahead}{blocking}"
    return None


def lowered_token_limit(state: AccountState, model: str, key: str, refused_tokens: int) -> int:
    """The provider refused shard `key` (`refused_tokens`) for queue room, so its real limit is
    below what the other shards held plus that one: the estimate becomes 90% of that, never
    above the old estimate and never below one such shard (which is then granted alone)."""
    tokens = sum(g.demand.tokens for k, g in state.granted.items() if k != key and g.demand.model == model)
    estimate = (tokens + refused_tokens) * 9 // 10
    current = state.limits.queue_tokens.get(model)
    if current is not None:
        estimate = min(estimate, current)
    return max(estimate, refused_tokens)
