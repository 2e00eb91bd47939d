"""Traces: durabatch's spans around provider HTTP calls and store queries.

`span(name, **attributes)` wraps a block in a span, a child of the current one (an activity's).
Spans go to the provider installed here: `build_tracer_provider(settings)` exports by OTLP/HTTP when
`DURABATCH_OTLP_ENDPOINT` is set, else records nothing; `install_tracer_provider` lets a test
substitute an in-memory exporter. This module knows nothing of Temporal, so providers and the store
can use it; the Temporal interceptor that shares the provider lives in `telemetry.interceptors`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.util.types import AttributeValue

from durabatch.settings import Settings

__all__ = [
    "SERVICE_NAME",
    "TRACER_NAME",
    "build_tracer_provider",
    "install_tracer_provider",
    "installed_provider",
    "shutdown_tracing",
    "span",
    "tracer",
]

SERVICE_NAME = "durabatch"
TRACER_NAME = "durabatch"

_provider: TracerProvider | None = None


def install_tracer_provider(provider: TracerProvider | None) -> None:
    """Make `provider` the one durabatch's spans and Temporal's interceptor use (None: uninstall).

    Kept separate from OpenTelemetry's global provider, which can be set only once per process, so
    that each test can install its own `InMemorySpanExporter`. Interceptors already built keep the
    tracer they were built with: install before `tracing_interceptors`.
    """
    global _provider
    _provider = provider


def build_tracer_provider(settings: Settings) -> TracerProvider:
    """A tracer provider exporting by OTLP/HTTP to `settings.otlp_endpoint`, or recording nothing.

    The endpoint is the collector's base URL (`http://otel-collector:4318`); `/v1/traces` is
    appended unless already there.
    """
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    endpoint = settings.otlp_endpoint.strip().rstrip("/")
    if endpoint:
        # Imported only when used: the exporter pulls in protobuf and requests.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def shutdown_tracing() -> None:
    """Flush and stop the installed provider (worker shutdown), so buffered spans are exported."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None


def tracer(name: str = TRACER_NAME) -> trace.Tracer:
    """The tracer of the installed provider, or of OpenTelemetry's global one (a no-op by default)."""
    return trace.get_tracer(name, tracer_provider=_provider)


def _attribute(value: Any) -> AttributeValue:
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    return str(value)


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """Run the block inside a span named `name`, a child of the current span (an activity's).

    Attributes are set verbatim (`batch_id=...`; dotted names via `**{"http.request.method": "POST"}`);
    None values are dropped and other non-primitive values are stringified. An exception leaving the
    block is recorded on the span and marks it as an error, then propagates. Never pass secrets.
    """
    cleaned = {key: _attribute(value) for key, value in attributes.items() if value is not None}
    with tracer().start_as_current_span(name, attributes=cleaned) as current:
        yield current


def installed_provider() -> TracerProvider | None:
    """The provider `install_tracer_provider` installed, if any."""
    return _provider
