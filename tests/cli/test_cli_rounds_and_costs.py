"""The command line's cost limit and dry run, retry rounds in `results --all-rounds`, and the
webhook receiver `durabatch hooks`, each through a subprocess as a shell runs them."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from standardwebhooks.webhooks import Webhook

from tests.cli.conftest import CLI, DevProcess, chat_lines, clean_env, run_cli
from tests.conftest import free_port

SUBMIT = ("--provider", "openai", "--endpoint", "/v1/chat/completions")


def test_dry_run_prints_the_estimate_and_sends_nothing(requests_file: Path) -> None:
    done = run_cli("submit", str(requests_file), *SUBMIT, "--dry-run", env=clean_env())
    assert done.returncode == 0, done.stderr
    assert "requests        12 in 1 provider batch" in done.stdout
    assert "model           gpt-4o-mini (openai)" in done.stdout
    assert "cost            $" in done.stdout and "at batch prices" in done.stdout
    assert done.stdout.rstrip().endswith("nothing was sent")


def test_dry_run_figures_match_a_hand_computed_example(tmp_path: Path) -> None:
    # two bodies of 84 and 76 bytes as staged (compact JSON): 21 + 19 estimated input tokens;
    # output: the first caps at 100, the second sets no cap and counts 4,096;
    # gpt-4o-mini at batch prices ($0.075 in, $0.30 out per 1M tokens):
    #   low  = 40 * 0.075 / 1e6                      = $0.000003
    #   high = 0.000003 + (100 + 4096) * 0.30 / 1e6  = $0.0012618 -> $0.001262
    lines = [
        {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100}},
        {"custom_id": "b", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}},
    ]  # fmt: skip
    path = tmp_path / "two.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    done = run_cli("submit", str(path), *SUBMIT, "--dry-run", env=clean_env())
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "requests        2 in 1 provider batch (0.0 MB)" in out
    assert "input tokens    ~40 " in out
    assert "output tokens   at most 4,196" in out
    assert "(1 request sets no cap: 4,096 counted each)" in out
    assert "cost            $0.000003 to $0.001262 at batch prices" in out


def test_dry_run_with_a_cost_limit_it_breaks_exits_2(requests_file: Path) -> None:
    done = run_cli(
        "submit", str(requests_file), *SUBMIT, "--dry-run", "--max-cost", "0.0000001", env=clean_env()
    )
    assert done.returncode == 2
    assert "refused" in done.stdout and "above max_cost_usd" in done.stdout


def test_dry_run_of_a_bad_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(chat_lines(1)[0]) + "\n{not json\n")
    done = run_cli("submit", str(path), *SUBMIT, "--dry-run", env=clean_env())
    assert done.returncode == 2
    assert f"{path.resolve()}:2:" in done.stderr and "nothing was sent" in done.stderr


def test_a_file_over_its_cost_limit_is_refused_and_the_id_stays_free(
    dev: DevProcess, requests_file: Path
) -> None:
    batch_id = f"cost-{uuid.uuid4().hex[:8]}"
    done = run_cli(
        "submit", str(requests_file), *SUBMIT, "--batch-id", batch_id, "--max-cost", "0.0000001", env=dev.env
    )
    assert (
        done.returncode == 2 and "above max_cost_usd" in done.stderr and "nothing was started" in done.stderr
    )
    assert run_cli("status", batch_id, env=dev.env).returncode == 3
    again = run_cli(
        "submit", str(requests_file), *SUBMIT, "--batch-id", batch_id, "--max-cost", "10", "--poll", "1", "--wait",
        env=dev.env, timeout=120,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr


def test_results_all_rounds_shows_every_attempt(dev: DevProcess, tmp_path: Path) -> None:
    lines = chat_lines(3)
    lines[1]["custom_id"] = "boom__fail_500"
    path = tmp_path / "rounds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    batch_id = f"rounds-{uuid.uuid4().hex[:8]}"
    done = run_cli(
        "submit", str(path), *SUBMIT, "--batch-id", batch_id, "--poll", "1", "--max-rounds", "2", "--wait",
        env=dev.env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    final = run_cli("results", batch_id, env=dev.env).stdout.splitlines()
    assert len(final) == 3
    every = [
        json.loads(x) for x in run_cli("results", batch_id, "--all-rounds", env=dev.env).stdout.splitlines()
    ]
    attempts = [e for e in every if e["line"]["custom_id"] == "boom__fail_500"]
    assert [e["final"] for e in attempts] == [False, True] and attempts[0]["round"] < attempts[1]["round"]
    status = json.loads(run_cli("status", batch_id, "--json", env=dev.env).stdout)
    assert status["retry_rounds"] == 1


def test_hooks_needs_a_secret() -> None:
    done = run_cli("hooks", env=clean_env())
    assert done.returncode == 2 and "DURABATCH_OPENAI_WEBHOOK_SECRET" in done.stderr


def test_hooks_receives_verifies_and_acknowledges(dev: DevProcess) -> None:
    secret = "whsec_" + base64.b64encode(b"cli-test-webhook-secret-0123456").decode()
    port = free_port()
    env = {**dev.env, "DURABATCH_OPENAI_WEBHOOK_SECRET": secret}
    proc = subprocess.Popen(
        [CLI, "hooks", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert "receiving webhooks at" in ready, ready
        body = json.dumps(
            {"id": "evt_1", "type": "batch.completed", "data": {"id": "batch_not_ours"}}
        ).encode()
        now = datetime.now(UTC)
        headers = {
            "webhook-id": "msg_cli_1",
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign("msg_cli_1", now, body),
        }
        url = f"http://127.0.0.1:{port}/hooks/openai"
        answer = httpx.post(url, content=body, headers=headers, timeout=10)
        assert answer.status_code == 200 and answer.json()["status"] == "ignored"
        forged = {**headers, "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}
        assert httpx.post(url, content=body, headers=forged, timeout=10).status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode in (0, 130), proc.returncode
