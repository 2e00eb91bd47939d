"""Logs, traces and metrics for the worker, the client and the command line.

Three independent pieces, each configured once per process by whoever owns the process (`worker.py`,
the CLI); nothing here runs at import time.

* **Logs**: `configure_logging(level)` installs one handler that writes one JSON object per line.
  Fields passed in `extra` (`batch_id`, `workflow_id`, `action`, ...) become top-level keys; the
  `workflow_id` that `activity.logger` / `workflow.logger` attach is lifted to the top level too, and
  `batch_id` is derived from a `batch-<batch_id>` workflow id when not given.
  Keys that name secrets are masked, and the values of the provider API key variables are masked
  wherever they appear, so a key pasted into a message or an exception still never reaches the log.
* **Traces**: `tracing_interceptors(settings)` builds the tracer provider (exporting by OTLP/HTTP
  when `DURABATCH_OTLP_ENDPOINT` is set, else recording nothing) and returns the Temporal
  `TracingInterceptor` for `Client.connect(interceptors=...)`; a worker built from that client
  inherits it. `span(name, **attributes)` wraps provider HTTP calls and store queries.
  `install_tracer_provider` lets a test substitute an in-memory exporter.
* **Metrics**: `runtime_with_metrics(address)` is the Temporal `Runtime` that serves Prometheus on
  `DURABATCH_METRICS_ADDRESS`; `DurabatchMetrics(runtime.metric_meter)` records durabatch's own
  counters on the same meter, so one scrape returns the SDK's metrics and ours.

Metrics are recorded through the runtime's meter, handed to activity classes by `worker.py` (the same
way as the store pool), rather than through `activity.metric_meter()`: that keeps them usable outside
an activity (store, CLI, tests), and free of the per-activity-type labels the activity meter adds.
Workflow code never records durabatch metrics, since a replay would count them again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import temporalio.activity
import temporalio.workflow
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.util.types import AttributeValue
from temporalio.common import MetricMeter
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from durabatch.settings import API_KEY_ENV, Settings

__all__ = [
    "DurabatchMetrics",
    "JsonFormatter",
    "configure_logging",
    "install_tracer_provider",
    "runtime_with_metrics",
    "shutdown_tracing",
    "span",
    "tracer",
    "tracing_interceptors",
]

SERVICE_NAME = "durabatch"
TRACER_NAME = "durabatch"
MASK = "***"

# ---------------------------------------------------------------------------------------------- logs

#: Attributes every LogRecord has; anything else on a record came from `extra`.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

#: Extra keys that must never be logged in clear, whatever their value.
_SECRET_KEY = re.compile(r"(api[_-]?key|secret|password|passwd|authorization|credential)", re.IGNORECASE)

#: Keys lifted to the top level from the dicts that Temporal's activity and workflow loggers attach.
_TEMPORAL_FIELDS = ("workflow_id", "run_id", "workflow_run_id", "workflow_type", "activity_type", "attempt")

#: A batch's workflow id is `batch-<batch_id>` (DESIGN.md), so a record with only the workflow id
#: still gets its batch id.
_BATCH_PREFIX = "batch-"

#: Secret values shorter than this are not masked: masking "x" everywhere would mangle every line.
_MIN_SECRET_LEN = 8


class JsonFormatter(logging.Formatter):
    """One JSON object per record: `ts`, `level`, `logger`, `msg`, the `extra` fields, `exc`.

    `secrets` are literal values (API keys) replaced by `***` in the whole output line.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= _MIN_SECRET_LEN}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _RECORD_FIELDS or key in entry:
                continue
            if key in ("temporal_activity", "temporal_workflow") and isinstance(value, Mapping):
                for field in _TEMPORAL_FIELDS:
                    if field in value:
                        entry.setdefault(field, value[field])
                continue
            entry[key] = MASK if _SECRET_KEY.search(key) else value
        workflow_id = entry.get("workflow_id")
        if "batch_id" not in entry and isinstance(workflow_id, str) and workflow_id.startswith(_BATCH_PREFIX):
            entry["batch_id"] = workflow_id.removeprefix(_BATCH_PREFIX)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        line = json.dumps(entry, default=str, ensure_ascii=False)
        for secret in self._secrets:
            line = line.replace(secret, MASK)
        return line


def _api_key_values(environ: Mapping[str, str]) -> list[str]:
    return [value for name in API_KEY_ENV.values() if (value := environ.get(name, "").strip())]


def configure_logging(level: str, *, stream: Any = None, secrets: Iterable[str] | None = None) -> None:
    """Send every log record at `level` or above to `stream` (stderr) as one JSON object per line.

    Replaces the root logger's handlers, so calling it twice is harmless. `secrets` defaults to the
    values of the provider API key variables (`OPENAI_API_KEY`, ...) in the environment right now.
    Temporal's activity and workflow loggers stop appending their info dict to the message, since
    the formatter already lifts `workflow_id` from it into its own field.
    """
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter(_api_key_values(os.environ) if secrets is None else secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    temporalio.activity.logger.activity_info_on_message = False
    temporalio.workflow.logger.workflow_info_on_message = False


# -------------------------------------------------------------------------------------------- traces

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


def tracing_interceptors(settings: Settings) -> list[TracingInterceptor]:
    """Interceptors for `Client.connect(interceptors=...)`, tracing client calls, workflows and activities.

    Installs a provider built from `settings` unless one is installed already (by an earlier call or
    a test). The returned `TracingInterceptor` is both a client and a worker interceptor; pass it to
    the client only, since a worker built from that client uses it too.
    """
    if _provider is None:
        install_tracer_provider(build_tracer_provider(settings))
        assert _provider is not None
        # Best effort: also let OpenTelemetry-instrumented libraries find it. The global can be set
        # only once per process, so a second call leaves it as it is.
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(_provider)
    return [TracingInterceptor(tracer("temporalio"))]


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


# ------------------------------------------------------------------------------------------- metrics


#: Ingest runs at hundreds to hundreds of thousands of lines per second; the default buckets stop at 1e4.
_INGEST_RATE_BUCKETS = (100.0, 1_000.0, 5_000.0, 10_000.0, 25_000.0, 50_000.0, 100_000.0, 250_000.0, 1e6)


def runtime_with_metrics(address: str) -> Runtime | None:
    """A Temporal runtime serving Prometheus metrics on `address` (HOST:PORT), or None if it is empty.

    Create it once per process, before any client, and pass it to `Client.connect(runtime=...)`;
    the HTTP listener starts here, so a busy port fails now rather than at the first scrape.
    """
    if not address.strip():
        return None
    prometheus = PrometheusConfig(
        bind_address=address.strip(),
        histogram_bucket_overrides={"durabatch_ingest_lines_per_second": _INGEST_RATE_BUCKETS},
    )
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))


class DurabatchMetrics:
    """durabatch's own metrics, next to the SDK's on the runtime's Prometheus endpoint.

    | metric | kind | labels |
    |---|---|---|
    | `durabatch_batches_started` | counter | provider |
    | `durabatch_batches_ended` | counter | status, provider |
    | `durabatch_requests` | counter | outcome (+ provider) |
    | `durabatch_tokens` | counter | kind=input/output (+ provider) |
    | `durabatch_cost_microdollars` | counter (USD x 1e6) | (provider) |
    | `durabatch_ingest_lines` | counter | (provider) |
    | `durabatch_ingest_lines_per_second` | histogram | (provider) |

    With `meter=None` (no `DURABATCH_METRICS_ADDRESS`) every method does nothing. Record from
    activities and the store only, once per fact (after it is committed), never from workflow code.
    """

    def __init__(self, meter: MetricMeter | None = None) -> None:
        self.meter = meter if meter is not None else MetricMeter.noop
        m = self.meter
        self._started = m.create_counter("durabatch_batches_started", "Batches started")
        self._ended = m.create_counter("durabatch_batches_ended", "Batches that reached a terminal status")
        self._requests = m.create_counter("durabatch_requests", "Requests recorded, by outcome")
        self._tokens = m.create_counter("durabatch_tokens", "Tokens used, by kind (input/output)")
        self._cost = m.create_counter("durabatch_cost_microdollars", "Cost at batch prices, in USD x 1e6")
        self._lines = m.create_counter("durabatch_ingest_lines", "Result lines ingested")
        self._rate = m.create_histogram_float(
            "durabatch_ingest_lines_per_second", "Ingest throughput of each ingest call", "1/s"
        )

    @classmethod
    def from_runtime(cls, runtime: Runtime | None) -> DurabatchMetrics:
        return cls(runtime.metric_meter if runtime is not None else None)

    @property
    def enabled(self) -> bool:
        return self.meter is not MetricMeter.noop

    @staticmethod
    def _labels(provider: str | None, **labels: str) -> dict[str, str | int | float | bool]:
        if provider:
            labels["provider"] = provider
        return dict(labels)

    def batch_started(self, provider: str) -> None:
        self._started.add(1, self._labels(provider))

    def batch_ended(self, status: str, provider: str) -> None:
        self._ended.add(1, self._labels(provider, status=status))

    def requests_recorded(self, outcome: str, n: int, *, provider: str | None = None) -> None:
        if n > 0:
            self._requests.add(n, self._labels(provider, outcome=outcome))

    def tokens(self, input: int, output: int, *, provider: str | None = None) -> None:
        if input > 0:
            self._tokens.add(input, self._labels(provider, kind="input"))
        if output > 0:
            self._tokens.add(output, self._labels(provider, kind="output"))

    def cost(self, usd: float, *, provider: str | None = None) -> None:
        micros = round(usd * 1_000_000)
        if micros > 0:
            self._cost.add(micros, self._labels(provider))

    def ingest_lines(self, n: int, seconds: float, *, provider: str | None = None) -> None:
        if n <= 0:
            return
        labels = self._labels(provider)
        self._lines.add(n, labels)
        if seconds > 0:
            self._rate.record(n / seconds, labels)
