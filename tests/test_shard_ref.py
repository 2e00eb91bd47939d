"""A shard's provider batch is one ProviderBatchRef in workflow state; state and activity results
recorded before that (flat keys) still decode, and what is written still reads in the old shape."""

from __future__ import annotations

import json

from durabatch.activity_api import SubmitResult
from durabatch.converter import DATA_CONVERTER
from durabatch.models import BatchState, ProviderBatchRef, ShardState

LEGACY_SHARD = {
    "shard": 2,
    "round": 1,
    "provider_batch_id": "msgbatch_1",
    "input_file_id": "file-9",
    "ref_extra": {"results_url": "https://x/results"},
    "state": "in_progress",
}


def test_a_legacy_shard_decodes_into_one_ref() -> None:
    shard = ShardState.model_validate(LEGACY_SHARD)
    assert shard.ref == ProviderBatchRef(
        provider="",
        provider_batch_id="msgbatch_1",
        input_file_id="file-9",
        extra={"results_url": "https://x/results"},
    )
    assert shard.require_ref().provider_batch_id == "msgbatch_1"


def test_a_shard_without_a_batch_has_no_ref() -> None:
    shard = ShardState.model_validate({"shard": 0, "provider_batch_id": None})
    assert shard.ref is None and shard.provider_batch_id is None
    try:
        shard.require_ref()
    except ValueError as exc:
        assert "shard 0" in str(exc)
    else:
        raise AssertionError("require_ref must refuse a shard that was never submitted")


def test_written_shards_carry_the_flat_keys_for_older_workers_and_round_trip() -> None:
    ref = ProviderBatchRef(provider="anthropic", provider_batch_id="msgbatch_2", extra={"k": "v"})
    state = BatchState(shards=[ShardState(shard=0, ref=ref)])
    wire = json.loads(state.model_dump_json())
    assert wire["shards"][0]["provider_batch_id"] == "msgbatch_2"
    assert wire["shards"][0]["ref_extra"] == {"k": "v"}
    again = BatchState.model_validate(wire)
    assert again.shards[0].ref == ref


def test_a_legacy_submit_result_decodes_through_the_converter() -> None:
    legacy = {"provider_batch_id": "batch_7", "input_file_id": "file-1", "reused": True}
    payload = DATA_CONVERTER.payload_converter.to_payloads([legacy])
    [decoded] = DATA_CONVERTER.payload_converter.from_payloads(payload, [SubmitResult])
    assert decoded.ref is not None and decoded.ref.provider_batch_id == "batch_7" and decoded.reused
