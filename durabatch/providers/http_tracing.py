"""Spans around provider HTTP calls, named by a low-cardinality path template."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.trace import Span

from durabatch.telemetry.traces import span, tracer

__all__ = ["http_span", "path_template", "stream_span"]

_VERSION_SEGMENT = re.compile(r"v\d+(?:alpha|beta)?\d*")
#: what follows one of these in a path is always one of its ids (`/files/<id>`, `/batches/<id>`)
_COLLECTIONS = frozenset({"files", "batches", "models"})


def path_template(url: str) -> str:
    """`/v1/batches/batch_abc123/cancel` -> `/v1/batches/{id}/cancel`: a low-cardinality span name part.

    The segment after `files`, `batches` or `models` is an id, and so is any segment holding a
    digit or a capital letter or longer than 32 characters (a random id such as
    `file-CvxhkPhnYMTyBGojBfKjPG` may hold no digit; the paths' own words are lower case);
    Gemini's `models/gemini-2.0-flash:batchGenerateContent` keeps its method after the colon.
    The query string, which could hold a key (`?key=`), is dropped.
    """
    path = urlsplit(url).path or "/"
    out: list[str] = []
    previous = ""
    for segment in path.split("/"):
        name, colon, method = segment.partition(":")
        if name and (
            previous in _COLLECTIONS
            or (
                not _VERSION_SEGMENT.fullmatch(name)
                and (any(c.isdigit() or c.isupper() for c in name) or len(name) > 32)
            )
        ):
            name = "{id}"
        previous = segment
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
