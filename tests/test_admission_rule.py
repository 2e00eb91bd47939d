"""The admission rule (durabatch/admission.py): never over a limit, priority first, fair to
tenants, nobody starves."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from durabatch.admission import (
    AccountLimits,
    AccountState,
    AdmissionRequest,
    Demand,
    grantable,
    lowered_token_limit,
    waiting_reason,
)


def request(
    i: int, tokens: int = 10, priority: int | None = None, tenant: str | None = None
) -> AdmissionRequest:
    return AdmissionRequest(
        key=f"k{i}", workflow_id=f"w{i}", shard=0, round=0, seq=i,
        demand=Demand(model="m", tokens=tokens, requests=1), priority=priority, tenant=tenant,
    )  # fmt: skip


REQUESTS = st.lists(
    st.tuples(st.integers(1, 60), st.sampled_from([None, 1, 3, 5]), st.sampled_from([None, "a", "b"])),
    min_size=1,
    max_size=30,
)


@settings(max_examples=200)
@given(REQUESTS, st.integers(1, 100), st.data())
def test_grants_never_exceed_the_limit_and_everyone_is_served(
    specs: list[tuple[int, int | None, str | None]], limit: int, data: st.DataObject
) -> None:
    state = AccountState(limits=AccountLimits(queue_tokens={"m": limit}))
    state.waiting = [request(i, t, p, n) for i, (t, p, n) in enumerate(specs)]
    served: set[str] = set()
    for _ in range(len(specs) + 1):
        grantable(state)
        in_use = sum(g.demand.tokens for g in state.granted.values())
        assert in_use <= limit or len(state.granted) == 1  # one oversize shard runs alone
        if not state.granted:
            break
        done = data.draw(st.sampled_from(sorted(state.granted)))
        served.add(done)
        del state.granted[done]
    grantable(state)
    served |= set(state.granted)
    while state.granted or state.waiting:  # release everything: all are served in the end
        for key in list(state.granted):
            served.add(key)
            del state.granted[key]
        grantable(state)
        served |= set(state.granted)
    assert served == {f"k{i}" for i in range(len(specs))}


def test_priority_first_then_the_tenant_holding_less_then_arrival() -> None:
    state = AccountState(limits=AccountLimits(max_concurrent_batches=2))
    state.granted = {"g": request(99, tenant="a")}
    state.waiting = [request(1, tenant="a"), request(2, tenant="b"), request(3, priority=1, tenant="a")]
    assert [g.key for g in grantable(state)] == ["k3"]
    del state.granted["g"], state.granted["k3"]
    assert [g.key for g in grantable(state)] == ["k1", "k2"] or [g.key for g in state.granted.values()] == [
        "k1",
        "k2",
    ]


def test_tenant_fairness_among_equals() -> None:
    state = AccountState(limits=AccountLimits(max_concurrent_batches=1))
    state.granted = {"x": request(50, tenant="a")}
    state.waiting = [request(1, tenant="a"), request(2, tenant="b")]
    # b holds nothing, a holds one: b's shard is first in line although it came later
    assert waiting_reason(state, "k2") == "waiting for admission: 1 of 1 concurrent batches running"
    assert waiting_reason(state, "k1") == "waiting for admission: 1 ahead; 1 of 1 concurrent batches running"
    del state.granted["x"]
    # a holds nothing now either: arrival decides
    assert [g.key for g in grantable(state)] == ["k1"]


def test_a_head_that_does_not_fit_blocks_smaller_ones_behind_it() -> None:
    state = AccountState(limits=AccountLimits(queue_tokens={"m": 100}))
    state.granted = {"big": request(0, tokens=60)}
    state.waiting = [request(1, tokens=50), request(2, tokens=10)]
    assert grantable(state) == []
    assert "60 of 100 enqueued tokens for m in use, needs 50" in (waiting_reason(state, "k1") or "")


def test_a_refusal_lowers_the_estimate_but_not_below_one_shard() -> None:
    state = AccountState(limits=AccountLimits(queue_tokens={"m": 1000}))
    state.granted = {"k0": request(0, tokens=300), "k1": request(1, tokens=400)}
    assert lowered_token_limit(state, "m", "k1", 400) == 630  # 90% of 300 + 400
    state.granted = {"k1": request(1, tokens=400)}
    assert lowered_token_limit(state, "m", "k1", 400) == 400
