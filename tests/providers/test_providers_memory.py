"""A 200 MB result file is read line by line with flat memory (tracemalloc peak, not timing)."""

from __future__ import annotations

import json
import tracemalloc

import httpx

from durabatch.providers.base import ProviderBatchRef, ProviderStatus
from durabatch.providers.openai import OpenAIProvider

FILE_BYTES = 200 * 1024 * 1024
LINE = (
    json.dumps(
        {
            "id": "batch_req_x",
            "custom_id": "req-000000",
            "response": {
                "status_code": 200,
                "request_id": "req_1",
                "body": {"choices": [{"message": {"content": "x" * 1900}}], "usage": {"prompt_tokens": 3}},
            },
            "error": None,
        }
    ).encode()
    + b"\n"
)
LINES_PER_BLOCK = 64
BLOCK = LINE * LINES_PER_BLOCK
BLOCKS = FILE_BYTES // len(BLOCK)


async def test_200mb_result_file_streams_with_flat_memory() -> None:
    async def body():
        for _ in range(BLOCKS):
            yield BLOCK  # the same bytes object each time: the server side allocates nothing

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body())

    provider = OpenAIProvider(
        httpx.AsyncClient(transport=httpx.MockTransport(handler)), "http://m.test/v1", lambda: "k"
    )
    status = ProviderStatus(state="completed", provider_status="completed", output_location="file-big")
    ref = ProviderBatchRef(provider="openai", provider_batch_id="b")
    tracemalloc.start()
    try:
        count = 0
        tokens = 0
        async for line in provider.results(ref, status):
            count += 1
            tokens += line.input_tokens
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == BLOCKS * LINES_PER_BLOCK
    assert tokens == 3 * count
    total = BLOCKS * len(BLOCK)
    assert total > 190 * 1024 * 1024
    # far below the file size: a few chunks and one line in flight, not the file
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes while reading {total} bytes"
