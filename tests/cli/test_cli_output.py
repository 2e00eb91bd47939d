"""What the command line prints: one `error:` line per usage error, flags in --help, and output
that stays usable on an 80-column terminal (whole batch ids, progress counts)."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from durabatch.cli import app
from durabatch.contract import BATCH_STATUSES
from tests.cli.conftest import DevProcess, clean_env, run_cli
from tests.conftest import free_port
from tests.helpers import eventually_sync


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["submit", "x.jsonl"], "Missing option '--provider'"),
        (["status"], "Missing argument"),
        (["list", "--bogus"], "No such option: --bogus"),
        (["list", "--limit", "many"], "'--limit'"),
        (["nope"], "No such command 'nope'"),
        (["db", "nope"], "No such command 'nope'"),
        (["emulator", "--port", "x"], "'--port'"),
        (["list", "--status", "done"], "--status must be one of " + ", ".join(BATCH_STATUSES)),
        (["list", "--provider", "mistral"], "--provider must be one of openai, anthropic, gemini"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_a_usage_error_is_one_error_line_and_exits_2(args: list[str], names: str) -> None:
    # Nothing listens there: every one of these must fail before it tries to connect.
    env = clean_env(DURABATCH_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}", COLUMNS="80")
    r = run_cli(*args, env=env, timeout=30)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert names in lines[0], lines[0]
    assert "╭" not in r.stderr and "Usage:" not in r.stderr and r.stdout == ""


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        (["submit"], ["--wait"]),
        (["status"], ["--json", "--wait"]),
        (["list"], ["--json"]),
        (["dev"], ["--no-emulator"]),
    ],
)
def test_booleans_are_flags_in_help(command: list[str], flags: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    for flag in flags:
        [line] = [ln for ln in result.output.splitlines() if ln.strip().startswith(flag + " ")]
        assert "<" not in line.split(flag, 1)[1].split()[0], line


def openai_lines_without_a_model(path: Path, n: int = 12) -> Path:
    path.write_text(
        "".join(
            json.dumps({"custom_id": f"r{i}", "body": {"messages": [{"role": "user", "content": f"q {i}"}]}})
            + "\n"
            for i in range(n)
        )
    )
    return path


def test_at_80_columns_progress_keeps_its_counts_and_list_keeps_whole_ids(
    dev: DevProcess, tmp_path: Path
) -> None:
    # Far wider than what fits beside the bar and the counts on 80 columns (70 characters).
    batch_id = "narrow-" + uuid.uuid4().hex + uuid.uuid4().hex[:31]
    env = {**dev.env, "COLUMNS": "80"}
    path = openai_lines_without_a_model(tmp_path / "reqs.jsonl")
    r = run_cli(
        "submit",
        str(path),
        "--provider",
        "openai",
        "--endpoint",
        "/v1/chat/completions",
        "--model",
        "gpt-4o-mini",
        "--batch-id",
        batch_id,
        "--poll",
        "1",
        "--wait",
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    [bar] = [line for line in r.stdout.splitlines() if line.startswith("batch narrow-")]
    assert "12/12" in bar and re.search(r" \d+:\d\d:\d\d$", bar), bar
    assert len(bar) <= 80, bar

    def listed() -> subprocess.CompletedProcess[str]:
        r = run_cli("list", "--limit", "1000", env=env)
        assert r.returncode == 0, r.stderr
        return r

    r = eventually_sync(listed, lambda r: batch_id in r.stdout, 15, what="the batch listed")
    # Even the id and the status do not fit in a table row: plain lines, the id whole on one line.
    [row] = [line for line in r.stdout.splitlines() if batch_id in line]
    assert row.split() == [batch_id, "completed"], row


def test_the_list_table_drops_columns_before_it_cuts_an_id() -> None:
    from datetime import UTC, datetime

    from rich.console import Console

    from durabatch.cli.console import batches_table
    from durabatch.client import BatchRow

    long_id = "a" * 40 + "-" + "b" * 18
    rows = [
        BatchRow(long_id, "in_progress", "anthropic", "claude-haiku-4-5", 1200, "RUNNING", datetime.now(UTC)),
        BatchRow("b1", "completed", "openai", None, 12, "COMPLETED", datetime.now(UTC)),
    ]
    for width, columns in ((200, 7), (100, 4), (80, 2)):
        console = Console(width=width, record=True)
        console.print(batches_table(rows, console.width), soft_wrap=True)
        lines = console.export_text().splitlines()
        assert all(len(line) <= width for line in lines), lines
        assert any(f"│ {long_id} │" in line for line in lines), lines
        assert lines[1].count("┃") - 1 == columns, lines[1]
        assert "None" not in console.export_text()


def test_list_json_gives_null_for_a_batch_without_a_model(dev: DevProcess, tmp_path: Path) -> None:
    batch_id = f"nomodel-{uuid.uuid4().hex[:8]}"
    path = openai_lines_without_a_model(tmp_path / "reqs.jsonl", 2)
    args = ["submit", str(path), "--provider", "openai", "--endpoint", "/v1/chat/completions"]
    r = run_cli(*args, "--batch-id", batch_id, "--poll", "1", env=dev.env)
    assert r.returncode == 0, r.stdout + r.stderr

    def mine_listed() -> list[dict[str, Any]]:
        r = run_cli("list", "--json", "--limit", "1000", env=dev.env)
        return [row for row in map(json.loads, r.stdout.splitlines()) if row["batch_id"] == batch_id]

    mine = eventually_sync(mine_listed, bool, 15, what="the batch listed")
    assert mine[0]["model"] is None, mine
    r = run_cli("list", "--limit", "1000", env=dev.env)
    [row] = [line for line in r.stdout.splitlines() if batch_id in line]
    assert "None" not in row and "null" not in row


def test_a_json_error_names_the_file_line_only(dev: DevProcess, tmp_path: Path) -> None:
    path = openai_lines_without_a_model(tmp_path / "bad_json.jsonl", 2)
    with path.open("a") as fh:
        fh.write('{"custom_id": "r2", "body": {"messages": [}}\n')
    args = ["submit", str(path), "--provider", "openai", "--endpoint", "/v1/chat/completions"]
    r = run_cli(*args, env={**dev.env, "COLUMNS": "80"})
    assert r.returncode == 2, r.stdout + r.stderr
    [line] = r.stderr.splitlines()
    assert line == (
        f"error: {path.resolve()}:3: not valid JSON at column 43: expecting value (nothing was started)"
    ), line


def test_the_status_list_is_every_batch_status() -> None:
    from typing import get_args

    from durabatch.models import BatchStatus

    assert BATCH_STATUSES == get_args(BatchStatus)
