"""Gemini Files API as batch mode uses it: resumable upload, get, delete, and download (Range)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from durabatch.emulator.files import StoredFile, stream_file
from durabatch.emulator.route_helpers import gemini_error, state_of, truncation
from durabatch.emulator.state import new_id
from durabatch.emulator.wire import base_url, json_ok, read_json, rfc3339

__all__ = ["delete_file", "download_file", "file_json", "get_file", "register", "upload"]

#: the real API refuses `files.get` for names longer than this (js-genai#1227)
MAX_FILE_ID = 40
FILE_TTL = 48 * 3600


def file_json(f: StoredFile, origin: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "files/" + f.id,
        "displayName": f.display_name or f.filename,
        "mimeType": f.mime_type,
        "sizeBytes": str(f.size),
        "createTime": rfc3339(f.created_at),
        "updateTime": rfc3339(f.created_at),
        "expirationTime": rfc3339(f.created_at + FILE_TTL),
        "uri": f"{origin}/v1beta/files/{f.id}",
        "state": "ACTIVE",
        "source": "GENERATED" if f.purpose == "GENERATED" else "UPLOADED",
    }
    if f.purpose == "GENERATED":
        body["downloadUri"] = f"{origin}/v1beta/files/{f.id}:download?alt=media"
    return body


async def upload(request: web.Request) -> web.Response:
    state = state_of(request)
    command = request.headers.get("X-Goog-Upload-Command", "").lower()
    upload_id = request.query.get("upload_id")
    if upload_id is None:
        if "start" not in command:
            return gemini_error(
                request, 400, "Only resumable uploads are supported (X-Goog-Upload-Command: start)."
            )
        meta = await read_json(request)
        file_meta = meta.get("file", {}) if isinstance(meta, dict) else {}
        file_meta.setdefault(
            "mimeType", request.headers.get("X-Goog-Upload-Header-Content-Type", "application/jsonl")
        )
        upload_id = new_id("gemini_file")
        state.uploads[upload_id] = (file_meta, bytearray())
        url = f"{base_url(request)}{request.path}?upload_id={upload_id}&upload_protocol=resumable"
        return web.Response(status=200, headers={"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"})
    session = state.uploads.get(upload_id)
    if session is None:
        return gemini_error(request, 404, "Upload session not found.", "NOT_FOUND")
    file_meta, buf = session
    offset = int(request.headers.get("X-Goog-Upload-Offset", len(buf)))
    del buf[offset:]
    buf.extend(await request.read())
    if "finalize" not in command:
        return web.Response(status=200, headers={"X-Goog-Upload-Status": "active"})
    del state.uploads[upload_id]
    name = str(file_meta.get("name") or "").removeprefix("files/") or upload_id
    f = StoredFile(
        name,
        str(file_meta.get("displayName") or name),
        "UPLOADED",
        state.now(),
        mime_type=str(file_meta.get("mimeType")),
        data=bytes(buf),
        display_name=file_meta.get("displayName"),
    )
    state.gemini_files.add(f)
    resp = json_ok({"file": file_json(f, base_url(request))})
    resp.headers["X-Goog-Upload-Status"] = "final"
    return resp


async def get_file(request: web.Request) -> web.Response:
    file_id = request.match_info["file_id"]
    if len(file_id) > MAX_FILE_ID:
        return gemini_error(
            request,
            400,
            f"File ID {file_id} cannot be more than {MAX_FILE_ID} characters.",
            "INVALID_ARGUMENT",
        )
    f = state_of(request).gemini_files.get(file_id)
    if f is None:
        return gemini_error(
            request,
            403,
            f"You do not have permission to access the File {file_id} or it may not exist.",
            "PERMISSION_DENIED",
        )
    return json_ok(file_json(f, base_url(request)))


async def delete_file(request: web.Request) -> web.Response:
    if not state_of(request).gemini_files.delete(request.match_info["file_id"]):
        return gemini_error(request, 404, "File not found.", "NOT_FOUND")
    return json_ok({})


async def download_file(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    f = state.gemini_files.get(request.match_info["file_id"])
    if f is None or f.purpose != "GENERATED":
        return gemini_error(request, 404, "File not found or not downloadable.", "NOT_FOUND")
    state.stats.downloads["gemini"] += 1
    return await stream_file(
        request, f, content_type="application/jsonl", honour_range=True, cut_after=truncation(request, f)
    )


def register(app: web.Application) -> None:
    """Gemini file routes under `/v1beta` and the SDK's default `/v1` (app.DUAL_ROUTES holds the
    `/v1/files/{id}` paths OpenAI uses too)."""
    r = app.router
    fid = "{file_id:[^/:]+}"
    for v in ("v1beta", "v1"):
        r.add_post(f"/upload/{v}/files", upload, name=f"gemini:files.upload:{v}")
        r.add_get(f"/{v}/files/{fid}:download", download_file, name=f"gemini:files.download:{v}")
        r.add_get(f"/download/{v}/files/{fid}:download", download_file, name=f"gemini:files.download:dl-{v}")
    r.add_get(f"/v1beta/files/{fid}", get_file, name="gemini:files.retrieve")
    r.add_delete(f"/v1beta/files/{fid}", delete_file, name="gemini:files.delete")
