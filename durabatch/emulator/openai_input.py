"""The OpenAI batch validator, emulated: an uploaded input file becomes the batch's items, or the
errors (`errors.data[]`, each with its line) that fail the batch as the real validator would."""

from __future__ import annotations

import json
from typing import Any

from durabatch.emulator.batches import Batch, RequestError, item_from_marker
from durabatch.emulator.state import EmulatorState

__all__ = ["MAX_ERRORS", "parse_input"]

#: the validator reports at most this many line errors
MAX_ERRORS = 1000


def parse_input(batch: Batch, data: bytes, state: EmulatorState) -> None:
    """Validate the input file like the real batch validator; failures go to `batch.errors`."""
    cfg = state.config
    if len(data) > cfg.openai_max_batch_file_bytes:
        batch.fail_with(
            "file_too_large",
            f"The batch input file is larger than the {cfg.openai_max_batch_file_bytes} maximum "
            f"for the {batch.model or 'requested'} model.",
        )
        return
    seen: set[str] = set()
    model: str | None = None
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        if not raw.strip():
            continue
        if len(batch.errors) >= MAX_ERRORS:
            break
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            batch.fail_with("invalid_json_line", "This line is not parseable as valid JSON.", lineno)
            continue
        missing = [k for k in ("custom_id", "method", "url", "body") if k not in obj]
        if missing:
            batch.fail_with(
                "missing_required_parameter",
                f"Missing required parameter: '{missing[0]}'.",
                lineno,
                missing[0],
            )
            continue
        cid, body = str(obj["custom_id"]), obj["body"]
        if obj["method"] != "POST":
            batch.fail_with(
                "invalid_method", "Only POST requests are supported in a batch.", lineno, "method"
            )
        elif obj["url"] != batch.endpoint:
            batch.fail_with(
                "url_mismatch",
                f"The URL provided for this request does not match the batch endpoint {batch.endpoint}.",
                lineno,
                "url",
            )
        elif cid in seen:
            batch.fail_with(
                "duplicate_custom_id",
                "The custom_id for this request is a duplicate of another request. The custom_id "
                "parameter must be unique for each request in a batch.",
                lineno,
                "custom_id",
            )
        elif not isinstance(body, dict):
            batch.fail_with("invalid_body", "The body of this request must be a JSON object.", lineno, "body")
        elif not isinstance(body.get("model"), str) or not body["model"]:
            # as OpenAI: every request names its model; none is assumed
            batch.fail_with(
                "missing_required_parameter", "Missing required parameter: 'model'.", lineno, "body.model"
            )
        elif model is not None and body.get("model") != model:
            batch.fail_with(
                "model_mismatch",
                "The provided model does not match the model of other requests in the file. Each "
                "input file can only include requests to a single model.",
                lineno,
                "body.model",
            )
        else:
            model = model or body.get("model")
            seen.add(cid)
            batch.items.append(item_from_marker(cid, body, _request_error(batch.endpoint, body)))
    batch.model = model
    if not batch.items and not batch.errors:
        batch.fail_with("empty_file", "The batch input file is empty.")
    elif len(batch.items) > cfg.openai_max_requests:
        batch.fail_with(
            "too_many_tasks",
            f"The batch input file has {len(batch.items)} requests, more than the limit of "
            f"{cfg.openai_max_requests} requests per batch.",
        )
    if batch.errors:
        batch.items = []


def _request_error(endpoint: str, body: dict[str, Any]) -> RequestError | None:
    needed = "input" if endpoint == "/v1/embeddings" else "messages"
    if endpoint in ("/v1/chat/completions", "/v1/embeddings") and needed not in body:
        return RequestError(
            400,
            f"Missing required parameter: '{needed}'.",
            "invalid_request_error",
            "missing_required_parameter",
            needed,
        )
    return None
