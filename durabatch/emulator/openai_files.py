"""OpenAI Files API: multipart upload, retrieve, list, delete, and content download (Range)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import BodyPartReader, web

from durabatch.emulator.errors import error_response
from durabatch.emulator.files import StoredFile, stream_file
from durabatch.emulator.route_helpers import items_after, missing_parameter, state_of, truncation
from durabatch.emulator.state import new_id
from durabatch.emulator.wire import json_ok

__all__ = ["create_file", "delete_file", "file_content", "file_json", "list_files", "retrieve_file"]

FILE_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
DEFAULT_FILE_TTL = 30 * 86400


def file_json(f: StoredFile) -> dict[str, Any]:
    expires = f.created_at + DEFAULT_FILE_TTL if f.purpose in ("batch", "batch_output") else None
    return {
        "id": f.id,
        "object": "file",
        "bytes": f.size,
        "created_at": int(f.created_at),
        "expires_at": None if expires is None else int(expires),
        "filename": f.filename,
        "purpose": f.purpose,
        "status": "processed",
        "status_details": None,
    }


def _no_file(request: web.Request, file_id: str) -> web.Response:
    return error_response(request, 404, f"No such File object: {file_id}", param="id")


async def create_file(request: web.Request) -> web.Response:
    current = state_of(request)
    if not request.content_type.startswith("multipart/"):
        return error_response(request, 400, "Expected a multipart/form-data request.")
    reader = await request.multipart()
    fields: dict[str, str] = {}
    data: bytes | None = None
    filename = "upload.jsonl"
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "file":
            filename = part.filename or filename
            data = bytes(await part.read())
        elif part.name:
            fields[part.name] = await part.text()
    if data is None:
        return missing_parameter(request, "file")
    purpose = fields.get("purpose")
    if not purpose:
        return missing_parameter(request, "purpose")
    if purpose not in FILE_PURPOSES:
        return error_response(
            request, 400, f"Invalid value for 'purpose': '{purpose}'.", param="purpose", code="invalid_value"
        )
    if len(data) > current.config.openai_max_upload_bytes:
        return error_response(request, 400, "File is too large.")
    if purpose == "batch" and not filename.endswith(".jsonl"):
        return error_response(request, 400, "Invalid file format for Batch API. Must be .jsonl")
    f = StoredFile(new_id("openai_file"), filename, purpose, current.now(), data=data)
    current.openai_files.add(f)
    return json_ok(file_json(f))


async def retrieve_file(request: web.Request) -> web.Response:
    f = state_of(request).openai_files.get(request.match_info["file_id"])
    if f is None:
        return _no_file(request, request.match_info["file_id"])
    # A generated file's size means generating it once: keep that off the event loop.
    await asyncio.to_thread(lambda: f.size)
    return json_ok(file_json(f))


async def list_files(request: web.Request) -> web.Response:
    q = request.query
    files = sorted(state_of(request).openai_files.files.values(), key=lambda f: f.created_at)
    if q.get("order", "desc") == "desc":
        files.reverse()
    if "purpose" in q:
        files = [f for f in files if f.purpose == q["purpose"]]
    if "after" in q:
        files = items_after(files, q["after"], lambda f: f.id)
    limit = max(1, min(10_000, int(q.get("limit", "10000"))))
    page = files[:limit]
    data = await asyncio.to_thread(lambda: [file_json(f) for f in page])
    return json_ok(
        {
            "object": "list",
            "data": data,
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": len(files) > limit,
        }
    )


async def delete_file(request: web.Request) -> web.Response:
    file_id = request.match_info["file_id"]
    if not state_of(request).openai_files.delete(file_id):
        return _no_file(request, file_id)
    return json_ok({"id": file_id, "object": "file", "deleted": True})


async def file_content(request: web.Request) -> web.StreamResponse:
    current = state_of(request)
    file_id = request.match_info["file_id"]
    f = current.openai_files.get(file_id)
    if f is None:
        return _no_file(request, file_id)
    current.stats.downloads["openai"] += 1
    return await stream_file(
        request,
        f,
        content_type="application/octet-stream",
        honour_range=True,
        cut_after=truncation(request, f),
    )
