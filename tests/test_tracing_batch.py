"""The spans of one real batch: BatchWorkflow on the dev server, the emulator over HTTP, PostgreSQL,
with Temporal's TracingInterceptor on the client and the worker and an in-memory exporter; and the
durabatch metrics that batch records, scraped from a Prometheus runtime."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from temporalio.client import Client

    from activities import ActivityDeps
    from durabatch.client import BatchClient
    from durabatch.converter import DATA_CONVERTER
    from durabatch.emulator import run_emulator
    from durabatch.providers.registry import build_provider
    from durabatch.service import worker_for
    from durabatch.settings import Settings
    from durabatch.store.pool import Pool
    from durabatch.telemetry import interceptors, traces
    from durabatch.telemetry.metrics import DurabatchMetrics, runtime_with_metrics
    from tests.conftest import free_port
    from tests.stack import API_KEY, chat_requests, emulator_config, write_jsonl


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    traces.install_tracer_provider(provider)
    yield exporter
    traces.install_tracer_provider(None)


def attribute_text(span: ReadableSpan) -> str:
    """Everything a span carries that an exporter would send: attributes and event attributes."""
    events = [dict(e.attributes or {}) for e in span.events]
    return json.dumps([span.name, dict(span.attributes or {}), events], default=str)


async def test_spans_of_one_batch(
    spans: InMemorySpanExporter,
    temporal_client: Client,
    pool: Pool,
    database_url: str,
    api_keys: None,
    tmp_path: Path,
) -> None:
    async with run_emulator(emulator_config()) as emu, httpx.AsyncClient(timeout=30) as http:
        settings = Settings(
            task_queue=f"trace-{uuid.uuid4().hex[:8]}",
            database_url=database_url,
            openai_base_url=f"{emu.url}/v1",
            anthropic_base_url=emu.url,
            gemini_base_url=emu.url,
            requests_roots=str(tmp_path),
        )
        client = Client(
            temporal_client.service_client,
            namespace=temporal_client.namespace,
            data_converter=DATA_CONVERTER,
            interceptors=interceptors.tracing_interceptors(settings),
        )
        metrics_address = f"127.0.0.1:{free_port()}"
        runtime = runtime_with_metrics(metrics_address)  # kept: it serves /metrics while alive
        metrics = DurabatchMetrics.from_runtime(runtime)
        deps = ActivityDeps(
            pool=pool, settings=settings, http=http, provider_factory=build_provider, metrics=metrics
        )
        batch_id = f"trace-{uuid.uuid4().hex[:8]}"
        async with worker_for(client, settings, deps):
            batches = BatchClient(client, settings, database_url)
            handle = await batches.start(
                batch_id=batch_id,
                provider="openai",
                endpoint="/v1/chat/completions",
                requests_uri=write_jsonl(tmp_path / "reqs.jsonl", chat_requests(5)),
                poll_schedule_seconds=[1.0],
            )
            summary = await handle.wait()
            await batches.close()
        scraped = await scrape(http, metrics_address, "durabatch_batches_ended")
    assert summary.status == "completed" and summary.counts.succeeded == 5

    finished = spans.get_finished_spans()
    names = {s.name for s in finished}
    # Temporal's interceptor: the client's start, the workflow run, each activity's schedule and run
    assert "StartWorkflow:BatchWorkflow" in names
    assert "RunWorkflow:BatchWorkflow" in names
    for activity_name in (
        "stage_requests",
        "submit_shard",
        "poll_shards",
        "ingest_results",
        "finalize_batch",
    ):
        assert f"StartActivity:{activity_name}" in names, sorted(names)
        assert f"RunActivity:{activity_name}" in names, sorted(names)
    assert len({s.context.trace_id for s in finished if s.name.endswith("Activity:stage_requests")}) == 1

    run_activity = {s.context.span_id: s for s in finished if s.name.startswith("RunActivity:")}

    http_spans = [s for s in finished if s.name == "provider.http"]
    assert http_spans, sorted(names)
    methods = {(s.attributes or {}).get("http.request.method") for s in http_spans}
    assert {"GET", "POST"} <= methods
    templates = {(s.attributes or {}).get("url.template") for s in http_spans}
    assert "/v1/batches" in templates and "/v1/batches/{id}" in templates, templates
    assert "/v1/files/{id}/content" in templates, "the result download has its span"
    for s in http_spans:
        attrs = s.attributes or {}
        assert attrs["provider"] == "openai"
        assert isinstance(attrs.get("http.response.status_code"), int), s.name
        assert s.parent is not None and s.parent.span_id in run_activity, "a child of its activity's span"

    store_spans = [s for s in finished if s.name.startswith("store.")]
    store_names = {s.name for s in store_spans}
    assert {
        "store.batches.create_batch",
        "store.results.write_results",
        "store.batches.finish",
    } <= store_names, store_names
    for s in store_spans:
        attrs = s.attributes or {}
        assert attrs["db.system"] == "postgresql"
    finish = next(s for s in store_spans if s.name == "store.batches.finish")
    assert (finish.attributes or {}).get("batch_id") == batch_id
    assert (
        finish.parent is not None and run_activity[finish.parent.span_id].name == "RunActivity:finalize_batch"
    )

    for s in finished:
        assert API_KEY not in attribute_text(s), f"{s.name} carries the API key"

    # the batch's own metrics: recorded by ingest and finalize, once
    assert sample(scraped, "durabatch_requests", outcome="succeeded", provider="openai") == 5
    assert sample(scraped, "durabatch_tokens", kind="input", provider="openai") == summary.input_tokens
    assert sample(scraped, "durabatch_tokens", kind="output", provider="openai") == summary.output_tokens
    assert sample(scraped, "durabatch_batches_ended", status="completed", provider="openai") == 1
    assert sample(scraped, "durabatch_ingest_lines", provider="openai") == 5
    assert sample(scraped, "durabatch_ingest_lines_per_second_count", provider="openai") == 1
    assert summary.cost_usd is not None
    assert sample(scraped, "durabatch_cost_microdollars", provider="openai") == round(summary.cost_usd * 1e6)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the Prometheus sample `name` whose labels include `labels`."""
    for line in text.splitlines():
        metric, _, value = line.rpartition(" ")
        if metric.split("{")[0] == name and all(f'{k}="{v}"' in metric for k, v in labels.items()):
            return float(value)
    return None


async def scrape(http: httpx.AsyncClient, address: str, wanted: str) -> str:
    text = ""
    for _ in range(50):
        text = (await http.get(f"http://{address}/metrics")).text
        if wanted in text:
            break
        await asyncio.sleep(0.1)
    return text
