"""Spans around provider HTTP calls, named by a low-cardinality path template."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.trace import Span

from durabatch.telemetry.traces import span, tracer

__all__ = ["http_span", "path_template", "stream_span"]

_VERSION_SEGMENT = re.compile(r"v\d+(?:alpha|beta)?\d*")


def path_template(url: str) -> str:
    """`/v1/batches/batch_abc123/cancel` -> `/v1/batches/{id}/cancel`: a low-cardinality span name part.

    Segments holding a digit or longer than 32 characters are ids (batch, file and model ids);
    Gemini's `models/gemini-2.0-flash:batchGenerateContent` keeps its method after the colon.
    The query string, which could hold a key (`?key=`), is dropped.
    """
    path = urlsplit(url).path or "/"
    out = []
    for segment in path.split("/"):
        name, colon, method = segment.partition(":")
        if (
            name
            and not _VERSION_SEGMENT.fullmatch(name)
            and (any(c.isdigit() for c in name) or len(name) > 32)
        ):
            name = "{id}"
        out.append(name + colon + method)
    return "/".join(out)


def http_span(provider: str, method: str, url: str) -> Any:
    template = path_template(url)
    return span(
        "provider.http",
        provider=provider,
        **{
            "http.request.method": method,
            "url.template": template,
            "server.address": urlsplit(url).hostname,
        },
    )


def stream_span(provider: str, url: str) -> Span:
    attributes = {
        "provider": provider,
        "http.request.method": "GET",
        "url.template": path_template(url),
        "server.address": urlsplit(url).hostname or "",
    }
    return tracer().start_span("provider.http", attributes=attributes)
