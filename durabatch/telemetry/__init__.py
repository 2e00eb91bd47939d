"""Logs, traces and metrics for the worker, the client and the command line.

Three independent modules, each configured once per process by whoever owns the process (the worker,
the CLI); nothing runs at import time, and this package imports none of them, so that importing
`durabatch.telemetry.traces` (providers, the store) never pulls in Temporal:

* `logs`: `configure_logging(level)`, one JSON object per line, secrets masked.
* `traces`: `span(...)` around provider calls and store queries; the tracer provider.
* `interceptors`: `tracing_interceptors(settings)`, Temporal's `TracingInterceptor` on that provider.
* `metrics`: `runtime_with_metrics(address)` and `DurabatchMetrics`, on the runtime's Prometheus endpoint.
"""
