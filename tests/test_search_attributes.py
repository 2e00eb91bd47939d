"""The worker registers durabatch's search attributes on a namespace that lacks them."""

from __future__ import annotations

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from durabatch.converter import DATA_CONVERTER
from durabatch.models import SEARCH_ATTRIBUTES
from durabatch.temporal import _create_commands, ensure_search_attributes
from tests.conftest import BIN_DIR


async def test_missing_search_attributes_are_registered_once() -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN_DIR / "temporal"), data_converter=DATA_CONVERTER, ui=False
    )
    try:
        added = await ensure_search_attributes(env.client)
        again = await ensure_search_attributes(env.client)
        listed = await env.client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=env.client.namespace)
        )
    finally:
        await env.shutdown()
    assert sorted(added) == sorted(SEARCH_ATTRIBUTES)
    assert again == []
    assert set(SEARCH_ATTRIBUTES) <= set(listed.custom_attributes)


def test_lacking_permission_message_says_what_to_run() -> None:
    text = _create_commands("prod", ["DurabatchStatus", "DurabatchRequests"])
    assert (
        "temporal operator search-attribute create --namespace prod --name DurabatchStatus --type Keyword"
        in text
    )
    assert "--name DurabatchRequests --type Int" in text
