"""A batch is findable and readable in the Temporal Web UI: `durabatch dev` (dev server with the UI)
on free ports runs a batch, headless Chromium opens the workflow list filtered by durabatch's search
attribute, and screenshots show the batch with its status. They land in the test's temp dir, or
under docs/ (the ones committed there) with DURABATCH_UPDATE_SCREENSHOTS=1, so that an ordinary
test run leaves the work tree clean."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.cli.conftest import chat_lines, data_dir, run_cli, start_dev

DOCS = Path(__file__).resolve().parent.parent / "docs"


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def browse(browser: str, profile: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=15000",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_batch_is_found_in_the_web_ui_by_its_search_attribute(tmp_path: Path) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip("no chromium on PATH (.ci/run installs Debian's `chromium` with apt-get)")
    batch_id = f"ui-{uuid.uuid4().hex[:8]}"
    requests_file = tmp_path / "requests.jsonl"
    requests_file.write_text("".join(json.dumps(r) + "\n" for r in chat_lines(8)))
    with data_dir() as path:
        dev = start_dev(path)
        try:
            r = run_cli(
                "submit",
                str(requests_file),
                "--provider",
                "openai",
                "--endpoint",
                "/v1/chat/completions",
                "--batch-id",
                batch_id,
                "--poll",
                "1",
                "--wait",
                env=dev.env,
            )
            assert r.returncode == 0, r.stdout + r.stderr
            ui = f"http://127.0.0.1:{dev.ui_port}/namespaces/default"
            query = quote(f'DurabatchStatus="completed" AND WorkflowId="batch-{batch_id}"')
            listing = f"{ui}/workflows?query={query}"

            # visibility is eventually consistent: retry until the list shows the batch
            for _ in range(5):
                page = browse(browser, tmp_path / "profile-dom", listing, "--dump-dom")
                if f"batch-{batch_id}" in page.stdout:
                    break
            assert f"batch-{batch_id}" in page.stdout, page.stderr[-2000:]
            assert "BatchWorkflow" in page.stdout

            shots = DOCS if os.environ.get("DURABATCH_UPDATE_SCREENSHOTS") == "1" else tmp_path
            shot = shots / "web-ui.png"
            done = browse(
                browser, tmp_path / "profile-list", listing, f"--screenshot={shot}", "--window-size=1400,800"
            )
            assert done.returncode == 0 and shot.stat().st_size > 20_000, done.stderr[-2000:]

            detail = f"{ui}/workflows/batch-{batch_id}"
            page = browse(browser, tmp_path / "profile-detail-dom", detail, "--dump-dom")
            assert f"batch-{batch_id}" in page.stdout and "COMPLETED" in page.stdout.upper()
            assert "BatchWorkflow" in page.stdout
            shot = shots / "web-ui-batch.png"
            done = browse(
                browser,
                tmp_path / "profile-detail",
                detail,
                f"--screenshot={shot}",
                "--window-size=1400,1000",
            )
            assert done.returncode == 0 and shot.stat().st_size > 20_000, done.stderr[-2000:]
        finally:
            code, output = dev.stop()
        assert code == 0, output
