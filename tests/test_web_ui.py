"""A batch is findable and readable in the Temporal Web UI: `durabatch dev` (dev server with the UI)
on free ports runs a completed batch and a running one; headless Chromium (tests/browser.py) opens
the workflow list filtered by durabatch's search attributes, with the `Durabatch*` attributes added
as columns, and a batch's User Metadata tab, whose Summary (set by the client at start) and Current
Details (set by the workflow) name the status, provider, model and the next poll.

Screenshots land in the test's temp dir, or under docs/ (the ones committed there) with
DURABATCH_UPDATE_SCREENSHOTS=1, so that an ordinary test run leaves the work tree clean."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from temporalio.client import Client

from tests.browser import Browser, chromium
from tests.cli.conftest import DevProcess, chat_lines, data_dir, run_cli, start_dev

DOCS = Path(__file__).resolve().parent.parent / "docs"

#: the list columns docs/cli.md shows how to add ("Configure Columns"), stored as the Web UI stores
#: them: per namespace, in the browser's local storage
COLUMNS = [
    "Status",
    "Workflow ID",
    "DurabatchStatus",
    "DurabatchProvider",
    "DurabatchModel",
    "DurabatchRequests",
]
COLUMNS_KEY = "namespace-workflow-table-columns"
CONFIGURE_COLUMNS = '[data-testid="workflows-summary-table-configuration-button"]'


def submit(dev: DevProcess, requests_file: Path, batch_id: str, *extra: str) -> None:
    r = run_cli(
        "submit",
        str(requests_file),
        "--provider",
        "openai",
        "--endpoint",
        "/v1/chat/completions",
        "--batch-id",
        batch_id,
        *extra,
        env=dev.env,
    )
    assert r.returncode == 0, r.stdout + r.stderr


async def run_id_of(dev: DevProcess, batch_id: str) -> str:
    client = await Client.connect(f"127.0.0.1:{dev.temporal_port}")
    return (await client.get_workflow_handle(f"batch-{batch_id}").describe()).run_id


async def check_the_web_ui(
    dev: DevProcess, browser: str, profile: Path, shots: Path, done: str, running: str
) -> None:
    ui = f"http://127.0.0.1:{dev.ui_port}/namespaces/default"
    async with Browser(browser, profile, width=1400, height=900) as page:
        # found by its search attribute (visibility is eventually consistent: the wait covers it)
        query = quote(f'DurabatchStatus="completed" AND WorkflowId="batch-{done}"')
        await page.goto(f"{ui}/workflows?query={query}")
        text = await page.wait_for_text(f"batch-{done}", "BatchWorkflow")
        assert f"batch-{running}" not in text, "the filter keeps the running batch out"

        # "Configure Columns" (docs/cli.md) offers the Durabatch* attributes
        await page.evaluate(f"document.querySelector({json.dumps(CONFIGURE_COLUMNS)}).click()")
        drawer = await page.wait_for_text("Configure Workflows Table", "Custom Search Attributes")
        offered = drawer[drawer.index("Custom Search Attributes") :]
        assert all(name in offered for name in COLUMNS[2:]), offered

        # the Durabatch* attributes as list columns, one row per batch
        columns = [{"label": label, "pinned": i < 2} for i, label in enumerate(COLUMNS)]
        await page.evaluate(
            f"localStorage.setItem({json.dumps(COLUMNS_KEY)}, {json.dumps(json.dumps({'default': columns}))})"
        )
        every_batch = quote('WorkflowType="BatchWorkflow"')
        await page.goto(f"{ui}/workflows?query={every_batch}")
        text = await page.wait_for_text(
            "DurabatchStatus", "DurabatchModel", f"batch-{done}", f"batch-{running}"
        )
        rows = [line.split("\t") for line in text.splitlines() if "\t" in line]
        cells = {
            row[1].strip(): [c.strip() for c in row[2:6]]
            for row in rows
            if row[1].strip().startswith("batch-")
        }
        assert cells[f"batch-{done}"] == ["completed", "openai", "gpt-4o-mini", "8"], cells
        assert cells[f"batch-{running}"][0] in ("submitted", "in_progress"), cells
        assert cells[f"batch-{running}"][1:] == ["openai", "gpt-4o-mini", "8"], cells
        assert await page.screenshot(shots / "web-ui.png") > 20_000

        # a batch's page: the summary the client set, the details the workflow keeps current
        for batch_id in (done, running):
            run_id = await run_id_of(dev, batch_id)
            await page.goto(f"{ui}/workflows/batch-{batch_id}/{run_id}/user-metadata")
            text = await page.wait_for_text(
                "Summary",
                f"openai batch {batch_id}: 8 requests, model gpt-4o-mini",
                "Current Details",
                "provider openai · model gpt-4o-mini",
                "requests 8:",
                *(["status completed"] if batch_id == done else ["next poll in 10 min"]),
            )
            if batch_id == done:
                assert "8 succeeded" in text and "cost so far $" in text and "next poll" not in text
            else:
                assert "status submitted" in text or "status in_progress" in text, text[-600:]
                assert "cost so far - (no results yet)" in text, text[-600:]
                assert await page.screenshot(shots / "web-ui-batch.png") > 20_000


def test_batches_are_found_and_read_in_the_web_ui(tmp_path: Path) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip("no chromium on PATH (.ci/run installs Debian's `chromium` with apt-get)")
    done, running = f"ui-{uuid.uuid4().hex[:8]}", f"ui-{uuid.uuid4().hex[:8]}"
    requests_file = tmp_path / "requests.jsonl"
    requests_file.write_text("".join(json.dumps(r) + "\n" for r in chat_lines(8)))
    shots = DOCS if os.environ.get("DURABATCH_UPDATE_SCREENSHOTS") == "1" else tmp_path
    with data_dir() as path:
        dev = start_dev(path)
        try:
            submit(dev, requests_file, done, "--poll", "1", "--wait")
            # a 10-minute poll: the batch stays running, its details say when it looks next
            submit(dev, requests_file, running, "--poll", "600")
            asyncio.run(check_the_web_ui(dev, browser, tmp_path / "profile", shots, done, running))
        finally:
            code, output = dev.stop()
        assert code == 0, output
