"""Metrics: durabatch's counters on the Temporal runtime's Prometheus endpoint.

`runtime_with_metrics(address)` is the Temporal `Runtime` that serves Prometheus on
`DURABATCH_METRICS_ADDRESS`; `DurabatchMetrics(runtime.metric_meter)` records durabatch's own counters
on the same meter, so one scrape returns the SDK's metrics and ours.

Metrics are recorded through the runtime's meter, handed to activity classes by the worker (the same
way as the store pool), rather than through `activity.metric_meter()`: that keeps them usable outside
an activity (store, CLI, tests), and free of the per-activity-type labels the activity meter adds.
Workflow code never records durabatch metrics, since a replay would count them again.
"""

from __future__ import annotations

from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

__all__ = ["DurabatchMetrics", "runtime_with_metrics"]

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
