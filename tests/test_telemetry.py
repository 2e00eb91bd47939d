"""Structured logs, spans (in memory and through a real worker), metrics (no-op and a real scrape)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import StatusCode
    from temporalio.client import Client
    from temporalio.worker import Worker

    from durabatch.settings import Settings
    from durabatch.telemetry import interceptors, traces
    from durabatch.telemetry.logs import configure_logging
    from durabatch.telemetry.metrics import DurabatchMetrics, runtime_with_metrics
    from durabatch.telemetry.traces import span
    from tests.conftest import free_port

# ---------------------------------------------------------------------------------------------- logs


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    configure_logging("debug", stream=stream, secrets=["sk-test-0123456789abcdef"])
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_log_lines_are_json_with_extra_fields(log_lines: io.StringIO) -> None:
    logging.getLogger("durabatch.test").info(
        "batch %s submitted", "b1", extra={"batch_id": "b1", "workflow_id": "batch-b1", "shards": 2}
    )
    [entry] = records(log_lines)
    assert entry["msg"] == "batch b1 submitted"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "durabatch.test"
    assert (entry["batch_id"], entry["workflow_id"], entry["shards"]) == ("b1", "batch-b1", 2)
    assert str(entry["ts"]).endswith("Z")


def test_log_lifts_workflow_id_from_temporal_logger_extra(log_lines: io.StringIO) -> None:
    details = {"workflow_id": "batch-b2", "activity_type": "poll_shards", "namespace": "default"}
    logging.getLogger("durabatch.test").warning("poll", extra={"temporal_activity": details})
    [entry] = records(log_lines)
    assert entry["workflow_id"] == "batch-b2"
    assert entry["batch_id"] == "b2", "derived from the workflow id"
    assert entry["activity_type"] == "poll_shards"
    assert "temporal_activity" not in entry


def test_log_never_shows_secrets(log_lines: io.StringIO) -> None:
    log = logging.getLogger("durabatch.test")
    log.error(
        "auth failed with key sk-test-0123456789abcdef", extra={"api_key": "anything", "batch_id": "b3"}
    )
    try:
        raise RuntimeError("Bearer sk-test-0123456789abcdef rejected")
    except RuntimeError:
        log.exception("provider call failed")
    text = log_lines.getvalue()
    assert "sk-test-0123456789abcdef" not in text
    assert "anything" not in text
    first, second = records(log_lines)
    assert first["api_key"] == "***" and first["batch_id"] == "b3"
    assert "RuntimeError" in str(second["exc"])


def test_log_level_filters(log_lines: io.StringIO) -> None:
    configure_logging("WARNING", stream=log_lines, secrets=[])
    logging.getLogger("durabatch.test").info("hidden")
    logging.getLogger("durabatch.test").warning("shown")
    assert [e["msg"] for e in records(log_lines)] == ["shown"]


# -------------------------------------------------------------------------------------------- traces


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traces.install_tracer_provider(provider)
    yield exporter
    traces.install_tracer_provider(None)
    provider.shutdown()


def test_span_helper_nests_and_records_attributes(spans: InMemorySpanExporter) -> None:
    with span("store.query", query="insert_results", rows=3, skipped=None, path=["a", "b"]):
        with span("provider.http", **{"http.request.method": "POST", "batch_id": "b1"}):
            pass
    inner, outer = spans.get_finished_spans()
    assert (outer.name, inner.name) == ("store.query", "provider.http")
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert dict(outer.attributes or {}) == {"query": "insert_results", "rows": 3, "path": ("a", "b")}
    assert dict(inner.attributes or {}) == {"http.request.method": "POST", "batch_id": "b1"}


def test_span_helper_records_errors(spans: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError), span("provider.http", provider="openai"):
        raise ValueError("boom")
    [failed] = spans.get_finished_spans()
    assert failed.status.status_code is StatusCode.ERROR
    assert [e.name for e in failed.events] == ["exception"]


def test_span_without_provider_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    # Another test (a worker run) may have installed a provider, here and as OpenTelemetry's global.
    monkeypatch.setattr(traces, "_provider", None)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    with span("store.query") as current:
        assert not current.is_recording()


def test_tracing_interceptors_keep_an_installed_provider(spans: InMemorySpanExporter) -> None:
    [interceptor] = interceptors.tracing_interceptors(Settings())
    with interceptor.tracer.start_as_current_span("probe"):
        pass
    assert [s.name for s in spans.get_finished_spans()] == ["probe"]


def test_tracer_provider_exports_by_otlp_only_when_configured() -> None:
    quiet = traces.build_tracer_provider(Settings(otlp_endpoint=""))
    loud = traces.build_tracer_provider(Settings(otlp_endpoint="http://collector:4318"))
    try:
        processors = loud._active_span_processor._span_processors
        assert len(processors) == 1
        assert processors[0].span_exporter._endpoint == "http://collector:4318/v1/traces"  # type: ignore[attr-defined]
        assert quiet._active_span_processor._span_processors == ()
    finally:
        quiet.shutdown()
        loud.shutdown()


@activity.defn
async def call_provider(batch_id: str) -> str:
    with span("provider.http", provider="emulator", batch_id=batch_id):
        await asyncio.sleep(0)
    with span("store.query", query="record_attempt", batch_id=batch_id):
        pass
    return batch_id


@workflow.defn
class TracedWorkflow:
    @workflow.run
    async def run(self, batch_id: str) -> str:
        return await workflow.execute_activity(
            call_provider, batch_id, start_to_close_timeout=timedelta(seconds=30)
        )


def by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in finished}


async def test_spans_of_one_workflow_through_a_real_worker(
    temporal_client: Client, task_queue: str, spans: InMemorySpanExporter
) -> None:
    config = temporal_client.config()
    config["interceptors"] = interceptors.tracing_interceptors(Settings())
    client = Client(**config)
    workflow_id = f"batch-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=task_queue, workflows=[TracedWorkflow], activities=[call_provider]):
        assert await client.execute_workflow(TracedWorkflow.run, "b1", id=workflow_id, task_queue=task_queue)
    named = by_name(spans.get_finished_spans())
    for expected in (
        "StartWorkflow:TracedWorkflow",
        "RunWorkflow:TracedWorkflow",
        "StartActivity:call_provider",
        "RunActivity:call_provider",
        "provider.http",
        "store.query",
    ):
        assert expected in named, sorted(named)
    run_activity = named["RunActivity:call_provider"]
    for child in ("provider.http", "store.query"):
        parent = named[child].parent
        assert parent is not None and parent.span_id == run_activity.context.span_id
    trace_ids = {s.context.trace_id for s in named.values()}
    assert len(trace_ids) == 1, "client, workflow, activity and helper spans share one trace"
    assert (named["RunWorkflow:TracedWorkflow"].attributes or {})["temporalWorkflowID"] == workflow_id


# ------------------------------------------------------------------------------------------- metrics


def test_metrics_without_runtime_are_a_no_op() -> None:
    assert runtime_with_metrics("") is None
    metrics = DurabatchMetrics.from_runtime(None)
    assert not metrics.enabled
    metrics.batch_started("openai")
    metrics.batch_ended("completed", "openai")
    metrics.requests_recorded("succeeded", 10)
    metrics.tokens(100, 50)
    metrics.cost(0.25)
    metrics.ingest_lines(1000, 0.5)


async def test_metrics_appear_on_the_prometheus_endpoint() -> None:
    import httpx

    address = f"127.0.0.1:{free_port()}"
    runtime = runtime_with_metrics(address)
    assert runtime is not None
    metrics = DurabatchMetrics.from_runtime(runtime)
    assert metrics.enabled
    metrics.batch_ended("completed", "openai")
    metrics.requests_recorded("succeeded", 7, provider="openai")
    metrics.tokens(120, 30, provider="openai")
    metrics.cost(0.0125, provider="openai")
    metrics.ingest_lines(500, 0.25, provider="openai")
    wanted = {
        "durabatch_batches_ended": 'status="completed"',
        "durabatch_requests": 'outcome="succeeded"',
        "durabatch_tokens": 'kind="input"',
        "durabatch_cost_microdollars": "12500",
        "durabatch_ingest_lines": "500",
        "durabatch_ingest_lines_per_second": "",
    }
    text = ""
    async with httpx.AsyncClient() as http:
        for _ in range(50):
            text = (await http.get(f"http://{address}/metrics")).text
            if all(name in text for name in wanted):
                break
            await asyncio.sleep(0.1)
    lines = text.splitlines()
    for name, fragment in wanted.items():
        matching = [line for line in lines if line.startswith(name) and fragment in line]
        assert matching, f"{name} with {fragment!r} not scraped:\n{text}"


async def test_batch_client_traces_its_calls_when_otlp_is_configured(
    spans: InMemorySpanExporter, temporal_client: Client
) -> None:
    from temporalio.contrib.opentelemetry import TracingInterceptor

    from durabatch.client import BatchClient

    address = temporal_client.service_client.config.target_host
    plain = await BatchClient.connect(Settings(temporal_address=address), require_store=False)
    assert not any(isinstance(i, TracingInterceptor) for i in plain.temporal.config()["interceptors"])

    nobody = f"no-worker-{uuid.uuid4().hex[:8]}"
    traced = await BatchClient.connect(
        Settings(temporal_address=address, task_queue=nobody, otlp_endpoint="http://127.0.0.1:4318"),
        require_store=False,
    )
    assert any(isinstance(i, TracingInterceptor) for i in traced.temporal.config()["interceptors"])
    # a start through it is the root span of the batch's trace (no worker here: it just waits)
    handle = await traced.start(
        batch_id=f"traced-{uuid.uuid4().hex[:8]}",
        provider="openai",
        endpoint="/v1/chat/completions",
        requests=[{"custom_id": "a", "body": {"model": "gpt-4o-mini", "messages": []}}],
    )
    await traced.temporal.get_workflow_handle(handle.workflow_id).terminate("test done")
    assert "StartWorkflow:BatchWorkflow" in {s.name for s in spans.get_finished_spans()}
