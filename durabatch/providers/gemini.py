"""Gemini API batch mode client (Developer API, docs/providers.md, Gemini).

durabatch names Gemini's one batch endpoint ``generateContent``; on the wire a batch is created
with ``POST /v1beta/models/{model}:batchGenerateContent``. The model comes from the shard (or the
first request's ``model``).

Submit: shards under `INLINE_MAX_BYTES` go inline (``inputConfig.requests.requests[]`` with
``metadata.key``), streamed as JSON; larger ones are uploaded as JSONL ``{"key", "request"}`` via the
resumable Files API (one pass over the shard to measure it, a second to send it) and referenced by
``inputConfig.fileName``. Creation is not idempotent, so the batch's ``displayName`` is the shard
tag and `find_submitted` looks for it.

Status: ``metadata.state`` (``BATCH_STATE_*``, also accepted as ``JOB_STATE_*``) maps through
`GEMINI_STATES`; ``batchStats`` counts are int64 strings with zeros omitted. Results are read from
``response`` or its mirror ``metadata.output``: a ``responsesFile`` (downloaded with
``GET /v1beta/files/{id}:download?alt=media``, streamed, keyed by ``key``) or inline responses
(keyed by ``metadata.key``; their cursor counts lines only, offset stays 0).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

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
from durabatch.providers.formats import GEMINI_ENDPOINT, check_endpoint, model_of
from durabatch.providers.gemini_wire import (
    INLINE_RESULTS,
    batch_created_at,
    gemini_result,
    gemini_status,
    inline_responses,
)
from durabatch.providers.jsonl import dumps_line
from durabatch.providers.wire import as_dict, parse_timestamp

__all__ = ["GEMINI_LIMITS", "INLINE_MAX_BYTES", "GeminiProvider"]

log = logging.getLogger(__name__)

GEMINI_LIMITS = ProviderLimits(
    # no documented per-batch request count; keep batches a reasonable size
    max_requests=100_000,
    # input files up to 2 GB
    max_bytes=1_900_000_000,
    # a generateContent request is limited to 20 MB
    max_line_bytes=20_000_000,
    endpoints=frozenset({GEMINI_ENDPOINT}),
)
#: shards smaller than this are sent inline (the documented inline limit is 20 MB)
INLINE_MAX_BYTES = 10_000_000
_FIND_SKEW_SECONDS = 300
_UPLOAD_MIME = "application/jsonl"


class GeminiProvider(ProviderClient):
    """`BatchProvider` for the Gemini Developer API's batch mode."""

    default_name = "gemini"
    default_limits = GEMINI_LIMITS
    created_status = "BATCH_STATE_PENDING"

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: Callable[[], str],
        *,
        name: str = "gemini",
        limits: ProviderLimits = GEMINI_LIMITS,
        inline_max_bytes: int = INLINE_MAX_BYTES,
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
        self.inline_max_bytes = inline_max_bytes

    def _auth_headers(self, key: str) -> dict[str, str]:
        return {"x-goog-api-key": key}

    # -- submit ------------------------------------------------------------------------------

    async def submit(self, shard: ShardSubmission) -> ProviderBatchRef:
        check_endpoint("gemini", shard.endpoint)
        model = (shard.model or await self._first_model(shard) or "").removeprefix("models/")
        if not model:
            raise BadRequest(
                "Gemini batches need a model (none on the shard or its requests)", provider=self.name
            )
        if shard.byte_size and shard.byte_size < self.inline_max_bytes:
            content, headers = self._inline_body(shard), {"Content-Type": "application/json"}
        else:
            file_name = shard.input_file_id
            if file_name is None:
                file_name = await self._upload(shard)
                if shard.on_uploaded is not None:
                    await shard.on_uploaded(file_name)
            batch = {"batch": {"displayName": shard.tag, "inputConfig": {"fileName": file_name}}}
            content, headers = _once(dumps_line(batch)[:-1]), {"Content-Type": "application/json"}
        operation = await self._http.json(
            "POST",
            f"/v1beta/models/{model}:batchGenerateContent",
            content=content,
            headers=headers,
            context="create batch",
        )
        name = str(operation.get("name") or (operation.get("metadata") or {}).get("name"))
        self._log_created(name, shard)
        return ProviderBatchRef(provider=self.name, provider_batch_id=name, extra={"model": model})

    async def _first_model(self, shard: ShardSubmission) -> str | None:
        async for request in shard.requests():
            return model_of("gemini", request.body)
        return None

    def _inline_body(self, shard: ShardSubmission) -> AsyncIterator[bytes]:
        async def entries() -> AsyncIterator[bytes]:
            async for request in shard.requests():
                yield dumps_line({"request": request.body, "metadata": {"key": request.custom_id}})[:-1]

        head = dumps_line({"displayName": shard.tag})[:-2]  # drop "}\n": the object continues
        return chunked(
            entries(),
            head=b'{"batch":' + head + b',"inputConfig":{"requests":{"requests":[',
            separator=b",",
            tail=b"]}}}}",
        )

    def _file_lines(self, shard: ShardSubmission) -> AsyncIterator[bytes]:
        async def lines() -> AsyncIterator[bytes]:
            async for request in shard.requests():
                yield dumps_line({"key": request.custom_id, "request": request.body})

        return chunked(lines())

    async def delete_input_file(self, file_id: str) -> None:
        """Remove an uploaded input file (`files/...`) whose batch was never created."""
        await self._http.request("DELETE", f"/v1beta/{file_id}", context="delete input file")

    async def _upload(self, shard: ShardSubmission) -> str:
        # The resumable protocol wants the size up front: measure in one streamed pass, send in another.
        size = 0
        async for chunk in self._file_lines(shard):
            size += len(chunk)
        start = await self._http.request(
            "POST",
            self._upload_root() + "/upload/v1beta/files",
            json_body={"file": {"displayName": shard.tag, "mimeType": _UPLOAD_MIME}},
            headers={
                "X-Goog-Upload-Protocol": "resumable",
                "X-Goog-Upload-Command": "start",
                "X-Goog-Upload-Header-Content-Length": str(size),
                "X-Goog-Upload-Header-Content-Type": _UPLOAD_MIME,
            },
            context="start upload",
        )
        upload_url = start.headers.get("x-goog-upload-url")
        if not upload_url:
            raise ProviderUnavailable("upload start answered without x-goog-upload-url", provider=self.name)
        done = await self._http.request(
            "POST",
            upload_url,
            content=self._file_lines(shard),
            headers={
                "X-Goog-Upload-Command": "upload, finalize",
                "X-Goog-Upload-Offset": "0",
                "Content-Length": str(size),
                "Content-Type": _UPLOAD_MIME,
            },
            context="upload batch input file",
        )
        try:
            name = done.json()["file"]["name"]
        except (ValueError, KeyError, TypeError):
            # Seen in the wild: 200 without a "file" key (docs/providers.md, trap 22).
            raise ProviderUnavailable("upload finished without a file name", provider=self.name) from None
        return str(name)

    def _upload_root(self) -> str:
        # The upload path hangs off the host root, not off /v1beta.
        return self._http.base_url.removesuffix("/v1beta")

    # -- find / status -----------------------------------------------------------------------

    async def find_submitted(self, shard: ShardSubmission) -> ProviderBatchRef | None:
        not_before = shard.attempt_started_at - _FIND_SKEW_SECONDS if shard.attempt_started_at else None
        pages = self._list_pages(
            "/v1beta/batches", items="operations", params={"pageSize": 100}, next_page=_next_page
        )
        async with aclosing(pages):
            async for operations in pages:
                older = False
                for op in operations:
                    meta = op.get("metadata") or {}
                    if meta.get("displayName") == shard.tag:
                        model = str(meta.get("model") or "").removeprefix("models/")
                        return ProviderBatchRef(
                            provider=self.name,
                            provider_batch_id=str(op.get("name") or meta.get("name")),
                            extra={"model": model} if model else {},
                        )
                    created = parse_timestamp(meta.get("createTime"))
                    if not_before is not None and created is not None and created < not_before:
                        older = True
                # list order is not documented, so stop only once a whole page predates the window
                if older and all(batch_created_at(op) < (not_before or 0) for op in operations):
                    return None
        return None

    def list_batches(self, since: float | None, max_pages: int) -> AsyncIterator[ProviderBatchSummary]:
        """``GET /v1beta/batches?pageSize=100&pageToken=``; the order is not documented, so the
        list is left only once a whole page predates `since`."""
        return self._summaries(
            "/v1beta/batches",
            items="operations",
            params={"pageSize": 100},
            next_page=_next_page,
            summarize=_summary,
            since=since,
            max_pages=max_pages,
            newest_first=False,
        )

    async def status(self, ref: ProviderBatchRef) -> ProviderStatus:
        operation = await self._http.json("GET", f"/v1beta/{ref.provider_batch_id}", context="get batch")
        return gemini_status(operation)

    # -- results -----------------------------------------------------------------------------

    async def results(
        self, ref: ProviderBatchRef, status: ProviderStatus, resume_from: ResultCursor | None = None
    ) -> AsyncIterator[ResultLine]:
        start = resume_from or ResultCursor()
        location = status.output_location
        if not location:
            return
        if location == INLINE_RESULTS:
            operation = await self._http.json("GET", f"/v1beta/{ref.provider_batch_id}", context="get batch")
            responses = inline_responses(operation)
            for index, item in enumerate(responses[start.lines :], start=start.lines + 1):
                meta = as_dict(item.get("metadata"))
                line = gemini_result(item, meta.get("key"))
                if line is not None:
                    line.position = (0, 0, index)
                    yield line
            return
        file_id = location.removeprefix("files/")
        async for line in self._result_lines(
            f"/v1beta/files/{file_id}:download?alt=media",
            part=0,
            start=start,
            parse=_file_result,
            id_field="key",
            what=f"responses file {location}",
        ):
            yield line

    # -- cancel / realtime -------------------------------------------------------------------

    def _cancel_path(self, ref: ProviderBatchRef) -> str:
        return f"/v1beta/{ref.provider_batch_id}:cancel"

    async def realtime(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        check_endpoint("gemini", endpoint)
        model = model_of("gemini", body)
        if not model:
            raise BadRequest("a Gemini real-time call needs body.model", provider=self.name)
        payload = {k: v for k, v in body.items() if k != "model"}
        return await self._http.json(
            "POST", f"/v1beta/models/{model}:generateContent", json_body=payload, context=endpoint
        )


def _next_page(page: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, str] | None:
    token = page.get("nextPageToken")
    return {"pageToken": str(token)} if token else None


def _summary(operation: dict[str, Any]) -> ProviderBatchSummary | None:
    meta = operation.get("metadata") or {}
    name = operation.get("name") or meta.get("name")
    if not name:
        return None
    status = gemini_status(operation)
    return ProviderBatchSummary(
        # the operation's name is the id `status()` reads (`batches/...`), as `find_submitted` keeps it
        provider_batch_id=str(name),
        state=status.state,
        provider_status=status.provider_status,
        created_at=parse_timestamp(meta.get("createTime")) if isinstance(meta, dict) else None,
    )


def _file_result(record: Any) -> ResultLine | None:
    # a responses file line is {"key": custom_id, "response" | "error": ...}
    return gemini_result(record, record.get("key") if isinstance(record, dict) else None)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
