"""A finished OpenAI batch served from disk, in its own process: the provider side of the ingest bench.

The output file is written once (`write_output_file`, with the emulator's own answers and line
shape) and then served with sendfile and `Range` support, so downloading it costs this process
next to nothing and is never rebuilt per download: ingest figures measure the ingesting side.

    python bench/frozen_provider.py --dir DIR --port 0   # prints "listening on http://host:port"

Every file `DIR/<batch id>.jsonl` is a completed batch `<batch id>` whose output file id is
`file-<batch id>`; `GET /v1/batches/<id>` and `GET /v1/files/<id>/content` are all it answers.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
from pathlib import Path
from typing import Any

from aiohttp import web

from durabatch.emulator.content import expected_chat_response

MODEL = "gpt-4o-mini"


def request_body(i: int) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": f"benchmark question {i}"}]}


def output_line(i: int, padding: int) -> bytes:
    """Line i of the output file, as the emulator writes it (id, custom_id, response, error)."""
    cid = f"r{i}"
    digest = hashlib.sha256(f"bench\x00{cid}".encode()).hexdigest()
    line: dict[str, Any] = {
        "id": "batch_req_" + digest[:32],
        "custom_id": cid,
        "response": {
            "status_code": 200,
            "request_id": "req_" + digest[32:64],
            "body": expected_chat_response("openai", "/v1/chat/completions", request_body(i)),
        },
        "error": None,
    }
    if padding:
        line["x_emulator_padding"] = "x" * padding
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def natural_line_bytes() -> int:
    return sum(len(output_line(i, 0)) for i in range(1000)) // 1000


def write_output_file(path: Path, n: int, target_bytes: int | None = None) -> int:
    """Write n result lines (in a shuffled order, as providers do), padded so the file is about
    `target_bytes`; returns the file's size."""
    pad = 0
    if target_bytes:
        # the padding field itself adds `,"x_emulator_padding":""` (24 bytes) to each line
        pad = max(0, target_bytes // n - natural_line_bytes() - 24)
    order = list(range(n))
    random.Random(n).shuffle(order)
    with path.open("wb") as fh:
        for i in order:
            fh.write(output_line(i, pad))
    return path.stat().st_size


def _batch(batch_id: str, n: int) -> dict[str, Any]:
    return {
        "id": batch_id,
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "errors": None,
        "input_file_id": f"file-in-{batch_id}",
        "completion_window": "24h",
        "status": "completed",
        "output_file_id": f"file-{batch_id}",
        "error_file_id": None,
        "created_at": 1_700_000_000,
        "in_progress_at": 1_700_000_001,
        "finalizing_at": 1_700_000_002,
        "completed_at": 1_700_000_003,
        "request_counts": {"total": n, "completed": n, "failed": 0},
        "metadata": {},
    }


def build_app(folder: Path) -> web.Application:
    counts: dict[str, int] = {}

    async def batch(request: web.Request) -> web.Response:
        batch_id = request.match_info["batch_id"]
        path = folder / f"{batch_id}.jsonl"
        if not path.exists():
            return web.json_response({"error": {"message": "no such batch"}}, status=404)
        if batch_id not in counts:
            with path.open("rb") as fh:
                counts[batch_id] = sum(1 for _ in fh)
        return web.json_response(_batch(batch_id, counts[batch_id]))

    async def content(request: web.Request) -> web.StreamResponse:
        path = folder / f"{request.match_info['file_id'].removeprefix('file-')}.jsonl"
        if not path.exists():
            return web.json_response({"error": {"message": "no such file"}}, status=404)
        return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})

    app = web.Application()
    app.router.add_get("/v1/batches/{batch_id}", batch)
    app.router.add_get("/v1/files/{file_id}/content", content)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()

    async def serve() -> None:
        runner = web.AppRunner(build_app(a.dir), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, a.host, a.port)
        await site.start()
        port = runner.addresses[0][1]
        print(f"listening on http://{a.host}:{port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
