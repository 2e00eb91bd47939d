"""The Temporal tracing interceptor, on the tracer provider of `telemetry.traces`."""

from __future__ import annotations

from opentelemetry import trace
from temporalio.contrib.opentelemetry import TracingInterceptor

from durabatch.settings import Settings
from durabatch.telemetry import traces

__all__ = ["tracing_interceptors"]


def tracing_interceptors(settings: Settings) -> list[TracingInterceptor]:
    """Interceptors for `Client.connect(interceptors=...)`, tracing client calls, workflows and activities.

    Installs a provider built from `settings` unless one is installed already (by an earlier call or
    a test). The returned `TracingInterceptor` is both a client and a worker interceptor; pass it to
    the client only, since a worker built from that client uses it too.
    """
    if traces.installed_provider() is None:
        provider = traces.build_tracer_provider(settings)
        traces.install_tracer_provider(provider)
        # Best effort: also let OpenTelemetry-instrumented libraries find it. The global can be set
        # only once per process, so a second call leaves it as it is.
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(provider)
    return [TracingInterceptor(traces.tracer("temporalio"))]
