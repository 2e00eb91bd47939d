"""OpenAI Batch API client (also OpenAI-compatible base URLs such as Azure OpenAI's v1 API).

Flow (docs/providers.md, OpenAI): stream the shard as JSONL into ``POST /files`` (multipart, purpose=batch),
then ``POST /batches`` tagged with ``metadata.durabatch_tag`` so `find_submitted` can recognise a
batch whose create response was lost. Results are the output file (part 0) and the error file
(part 1), either of which may be null; each is streamed line by line with resume.

Wire traps handled here (docs/providers.md, Traps): a failed request is a non-2xx ``response.status_code``
with top-level ``error: null``; ``completed`` may carry ``output_file_id: null``; the enqueued-token
limit is a later ``failed`` batch with ``token_limit_exceeded`` (reported with ``retry_later``);
cancelling an ended batch answers 409, which is not an error.

Azure: a base URL on ``*.openai.azure.com`` (or ``azure=True``) authenticates with ``api-key``
instead of ``Authorization: Bearer`` and waits for an uploaded input file to be ``processed``; the
dated API keeps its ``?api-version=...`` from the base URL on every call. Together's answers
(``{"job": ...}``, uppercase statuses) are read too.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any
from urllib.parse import urlparse

import httpx

from durabatch.providers.base import (
    ProviderBatchRef,
    ProviderBatchSummary,
    ProviderLimits,
    ProviderStatus,
    ResultCursor,
    ResultLine,
    ShardSubmission,
)
from durabatch.providers.client_base import ProviderClient, chunked
from durabatch.providers.errors import BadRequest, ProviderUnavailable
from durabatch.providers.formats import OPENAI_ENDPOINTS, check_endpoint
from durabatch.providers.jsonl import dumps_line
from durabatch.providers.openai_wire import openai_decode, openai_result, openai_status, unwrap_batch

__all__ = ["OPENAI_LIMITS", "OpenAIProvider"]

log = logging.getLogger(__name__)

OPENAI_LIMITS = ProviderLimits(
    max_requests=50_000,
    # 200 MB (209,715,200 bytes) is the documented file limit; the bodies may fill this much, the
    # rest is for each line's envelope at its longest (a 64-character custom_id of escaped control
    # characters: 454 bytes, 22.7 MB for 50,000 lines; tests/test_shard_split.py checks the sum).
    max_bytes=187_000_000,
    max_line_bytes=50_000_000,
    endpoints=OPENAI_ENDPOINTS,
)

_FIND_SKEW_SECONDS = 300
#: how long Azure may take to process an uploaded input file before the submit is retried
_FILE_PROCESSING_TIMEOUT = 600.0


class OpenAIProvider(ProviderClient):
    """`BatchProvider` for OpenAI and OpenAI-compatible APIs."""

    default_name = "openai"
    default_limits = OPENAI_LIMITS
    created_status = "validating"

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: Callable[[], str],
        *,
        name: str = "openai",
        azure: bool | None = None,
        limits: ProviderLimits = OPENAI_LIMITS,
        download_attempts: int = 5,
        retry_delay: float = 0.2,
    ) -> None:
        super().__init__(
            http,
            base_url,
            api_key,
            name=name,
            limits=limits,
            download_attempts=download_attempts,
            retry_delay=retry_delay,
        )
        if azure is None:
            azure = (urlparse(base_url).hostname or "").endswith(".openai.azure.com")
        self._azure = azure

    def _auth_headers(self, key: str) -> dict[str, str]:
        return {"api-key": key} if self._azure else {"Authorization": f"Bearer {key}"}

    # -- submit ------------------------------------------------------------------------------

    async def submit(self, shard: ShardSubmission) -> ProviderBatchRef:
        check_endpoint("openai", shard.endpoint)
        file_id = shard.input_file_id
        if file_id is None:
            file_id = await self._upload(shard)
            if shard.on_uploaded is not None:
                await shard.on_uploaded(file_id)
        batch = await self._http.json(
            "POST",
            "/batches",
            json_body={
                "input_file_id": file_id,
                "endpoint": shard.endpoint,
                "completion_window": "24h",
                "metadata": _metadata(shard),
            },
            context="create batch",
        )
        self._log_created(batch.get("id"), shard)
        return self._ref(batch)

    async def _upload(self, shard: ShardSubmission) -> str:
        boundary = secrets.token_hex(16)
        filename = re.sub(r"[^A-Za-z0-9_.-]", "_", shard.tag)[:100] + ".jsonl"

        async def lines() -> AsyncIterator[bytes]:
            async for request in shard.requests():
                yield dumps_line(
                    {
                        "custom_id": request.custom_id,
                        "method": "POST",
                        "url": shard.endpoint,
                        "body": request.body,
                    }
                )

        # multipart/form-data written by hand so the file part can be streamed from the store.
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/jsonl\r\n\r\n"
        ).encode()
        body = chunked(lines(), head=head, tail=f"\r\n--{boundary}--\r\n".encode())

        uploaded = await self._http.json(
            "POST",
            "/files",
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            context="upload batch input file",
        )
        file_id = uploaded.get("id")
        if not isinstance(file_id, str):
            raise BadRequest("upload answered without a file id", provider=self.name)
        if self._azure:
            await self._wait_processed(file_id, uploaded)
        return file_id

    async def delete_input_file(self, file_id: str) -> None:
        """Remove an uploaded input file whose batch was never created (best effort by the caller)."""
        await self._http.json("DELETE", f"/files/{file_id}", context="delete input file")

    async def _wait_processed(self, file_id: str, file: dict[str, Any]) -> None:
        """Azure OpenAI refuses a batch whose input file is still being processed (docs/providers.md,
        Azure OpenAI): wait for `processed`; a file in `error` is bad input, one that never gets there is
        an outage worth retrying."""
        delay, waited = 0.5, 0.0
        while True:
            status = str(file.get("status") or "processed")
            if status == "processed":
                return
            if status in ("error", "deleted", "deleting"):
                detail = file.get("status_details") or status
                raise BadRequest(f"input file {file_id} was not accepted: {detail}", provider=self.name)
            if waited >= _FILE_PROCESSING_TIMEOUT:
                raise ProviderUnavailable(
                    f"input file {file_id} still {status!r} after {waited:.0f} s", provider=self.name
                )
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 10.0)
            file = await self._http.json("GET", f"/files/{file_id}", context="get input file")

    # -- find --------------------------------------------------------------------------------

    async def find_submitted(self, shard: ShardSubmission) -> ProviderBatchRef | None:
        """Newest-first scan of ``GET /batches`` for ``metadata.durabatch_tag == shard.tag``, stopping
        at batches created well before the first attempt."""
        not_before = shard.attempt_started_at - _FIND_SKEW_SECONDS if shard.attempt_started_at else None
        pages = self._list_pages("/batches", items="data", params={"limit": 100}, next_page=_next_page)
        async with aclosing(pages):
            async for data in pages:
                for batch in data:
                    metadata = batch.get("metadata") or {}
                    if isinstance(metadata, dict) and metadata.get("durabatch_tag") == shard.tag:
                        return self._ref(batch)
                oldest = data[-1].get("created_at") if data else None
                if not_before is not None and isinstance(oldest, int | float) and oldest < not_before:
                    return None
        return None

    def _ref(self, batch: dict[str, Any]) -> ProviderBatchRef:
        batch = unwrap_batch(batch)
        return ProviderBatchRef(
            provider=self.name,
            provider_batch_id=str(batch["id"]),
            input_file_id=batch.get("input_file_id"),
        )

    def list_batches(self, since: float | None, max_pages: int) -> AsyncIterator[ProviderBatchSummary]:
        """``GET /batches?limit=100&after=``, newest first."""
        return self._summaries(
            "/batches",
            items="data",
            params={"limit": 100},
            next_page=_next_page,
            summarize=_summary,
            since=since,
            max_pages=max_pages,
        )

    # -- status ------------------------------------------------------------------------------

    async def status(self, ref: ProviderBatchRef) -> ProviderStatus:
        batch = await self._http.json("GET", f"/batches/{ref.provider_batch_id}", context="get batch")
        return openai_status(batch)

    # -- results -----------------------------------------------------------------------------

    async def results(
        self, ref: ProviderBatchRef, status: ProviderStatus, resume_from: ResultCursor | None = None
    ) -> AsyncIterator[ResultLine]:
        start = resume_from or ResultCursor()
        parts = [status.output_location, status.error_location]
        for part, file_id in enumerate(parts):
            if part < start.part or not file_id:
                continue
            async for line in self._result_lines(
                f"/files/{file_id}/content",
                part=part,
                start=start,
                parse=openai_result,
                headers={"Accept": "application/binary"},
                what=f"{'output' if part == 0 else 'error'} file {file_id}",
                decode=openai_decode,
            ):
                yield line

    # -- cancel / realtime -------------------------------------------------------------------

    def _cancel_path(self, ref: ProviderBatchRef) -> str:
        return f"/batches/{ref.provider_batch_id}/cancel"

    async def realtime(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        check_endpoint("openai", endpoint)
        # base URL already ends in /v1; endpoints are named with it
        return await self._http.json("POST", endpoint.removeprefix("/v1"), json_body=body, context=endpoint)


def _next_page(page: dict[str, Any], data: list[dict[str, Any]]) -> dict[str, str] | None:
    return {"after": str(data[-1].get("id"))} if data and page.get("has_more") else None


def _summary(batch: dict[str, Any]) -> ProviderBatchSummary | None:
    batch = unwrap_batch(batch)
    if not batch.get("id"):
        return None
    status = openai_status(batch)
    created = batch.get("created_at")
    return ProviderBatchSummary(
        provider_batch_id=str(batch["id"]),
        state=status.state,
        provider_status=status.provider_status,
        created_at=float(created) if isinstance(created, int | float) else None,
    )


def _metadata(shard: ShardSubmission) -> dict[str, str]:
    return {
        "durabatch_tag": shard.tag,
        "durabatch_batch_id": shard.batch_id,
        "durabatch_shard": str(shard.shard),
        "durabatch_round": str(shard.round),
    }
