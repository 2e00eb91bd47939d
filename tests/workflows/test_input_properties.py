"""Property: whatever JSON object a client starts BatchWorkflow with, the run either fails at once
with an InvalidInput failure naming a field, or proceeds to an end; no history ever holds a
WorkflowTaskFailed event (a task failure retries forever and leaves the batch stuck RUNNING).

Inputs are generated valid and hostile: wrong types, huge, negative and non-finite numbers, unknown
keys, odd handlers, `state` objects, bad ids, long metadata. Examples are bounded and derandomized
so the run is repeatable in CI and takes well under two minutes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from durabatch.contract import BATCH_FAILED, INVALID_INPUT
from durabatch.store.pool import Pool
from tests.stack import Stack, chat_requests, worker_stack
from tests.workflows.test_contract_and_identity import start_raw_json

#: Field names an InvalidInput message may name (top level, inside handlers, metadata keys).
_NAMED = "invalid BatchInput"

_numbers = st.one_of(
    st.floats(min_value=0.5, max_value=3.0),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.sampled_from([0, -1, 1e12, 1e300, 86400 * 31]),
)
#: text as other clients may send it: lone surrogates and NUL included
_odd_text = st.text(st.characters(categories=["Cs", "Cc", "L"]), max_size=6)
_junk = st.one_of(
    st.none(), st.booleans(), st.text(max_size=8), _odd_text, _numbers, st.lists(st.integers(), max_size=3)
)


def _handler() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries(
            {
                "type": st.just("webhook"),
                "url": st.sampled_from(["http://127.0.0.1:9/hook", "ftp://x", "/rel", ""]),
            },
            optional={
                "max_attempts": st.one_of(st.integers(-5, 200), _junk),
                "secret_env": _junk,
                "retries": _junk,
            },
        ),
        st.fixed_dictionaries(
            {"type": st.sampled_from(["activity", "email", 3])},
            optional={"name": _junk, "task_queue": _junk},
        ),
        _junk,
    )


def _fields() -> st.SearchStrategy[dict[str, Any]]:
    """Overrides applied to a valid input (an empty dict keeps it valid)."""
    return st.fixed_dictionaries(
        {},
        optional={
            "poll_schedule_seconds": st.one_of(st.lists(_numbers, max_size=4), _junk),
            "max_age_seconds": st.one_of(st.floats(min_value=5, max_value=30), _numbers, _junk),
            "handler_grace_seconds": st.one_of(st.just(0), _numbers, _junk),
            "handlers": st.one_of(st.lists(_handler(), max_size=2), _junk),
            "metadata": st.one_of(
                st.dictionaries(st.text(max_size=150), st.text(max_size=1100), max_size=3),
                st.dictionaries(st.text(max_size=4), _junk, max_size=2),
                _junk,
            ),
            "state": st.one_of(st.fixed_dictionaries({"staged": st.booleans()}), _junk),
            "batch_id": st.one_of(st.sampled_from(["", "-x", "a" * 200, "ok id", "é"]), _junk),
            "provider": st.one_of(st.sampled_from(["openai", "OpenAI", "azure"]), _junk),
            "model": st.one_of(st.just("gpt-4o-mini"), _odd_text, _junk),
            "endpoint": st.one_of(st.just("/v1/chat/completions"), _junk),
            "max_age_second": _junk,
            "poll_schedule": _junk,
            "requests_uri": _junk,
        },
    )


def _valid() -> st.SearchStrategy[dict[str, Any]]:
    """Overrides inside the contract: such a batch must run to an end."""
    return st.fixed_dictionaries(
        {},
        optional={
            "poll_schedule_seconds": st.lists(
                st.floats(min_value=0.5, max_value=2.0), min_size=1, max_size=3
            ),
            "max_age_seconds": st.floats(min_value=10, max_value=60),
            "handlers": st.lists(
                st.fixed_dictionaries(
                    {
                        "type": st.just("webhook"),
                        "url": st.just("http://127.0.0.1:9/hook"),
                        "max_attempts": st.just(1),
                    }
                ),
                max_size=1,
            ),
            "metadata": st.dictionaries(
                st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=10),
                st.text(max_size=20).filter(lambda v: "\x00" not in v),
                max_size=3,
            ),
        },
    )


@pytest.fixture(scope="module")
async def stack(
    temporal_client: Client, pool: Pool, database_url: str, api_keys: None
) -> AsyncIterator[Stack]:
    async with worker_stack(temporal_client, pool, database_url, queue_prefix="prop") as s:
        yield s


async def _check_one(stack: Stack, overrides: dict[str, Any]) -> str:
    workflow_key = uuid.uuid4().hex[:10]
    payload: dict[str, Any] = {
        "batch_id": workflow_key,
        "provider": "openai",
        "endpoint": "/v1/chat/completions",
        "requests": chat_requests(2),
        "poll_schedule_seconds": [1.0],
        "max_age_seconds": 20.0,
        "handler_grace_seconds": 0,
        **overrides,
    }
    # raw JSON as any client may send it (Python's json: NaN, Infinity and lone surrogates pass)
    handle = await start_raw_json(stack, json.dumps(payload).encode(), workflow_key)
    outcome = "completed"
    try:
        await asyncio.wait_for(handle.result(), 60)
    except WorkflowFailureError as exc:
        cause = exc.cause
        assert isinstance(cause, ApplicationError), cause
        assert cause.type in (INVALID_INPUT, BATCH_FAILED), cause
        if cause.type == INVALID_INPUT:
            assert cause.message.startswith(_NAMED) and "'" in cause.message, cause.message
        outcome = cause.type or "?"
    history = await handle.fetch_history()
    task_failures = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    assert not task_failures, (overrides, task_failures[0])
    return outcome


async def test_every_generated_input_fails_fast_naming_a_field_or_proceeds_to_an_end(stack: Stack) -> None:
    loop = asyncio.get_running_loop()
    seen: dict[str, int] = {}

    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.one_of(_fields(), _fields(), _valid()))
    def one(overrides: dict[str, Any]) -> None:
        # hypothesis drives synchronously from a thread; each run happens on the test's loop
        outcome = asyncio.run_coroutine_threadsafe(_check_one(stack, overrides), loop).result(90)
        seen[outcome] = seen.get(outcome, 0) + 1

    await asyncio.to_thread(one)
    # the generator reaches both sides of the contract
    assert seen.get(INVALID_INPUT, 0) > 0 and seen.get("completed", 0) > 0, seen
