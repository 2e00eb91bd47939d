"""With a state dir the emulator carries its batches and files across a restart."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from durabatch.emulator import run_emulator
from durabatch.emulator.persist import STATE_FILE
from tests.emulator.conftest import fast_config
from tests.emulator.helpers import (
    ANTHROPIC_H,
    KEY,
    OPENAI_H,
    chat_line,
    jsonl,
    openai_batch,
    openai_wait,
    parse_jsonl,
)


async def test_a_restarted_emulator_carries_a_running_batch_on(tmp_path: Path) -> None:
    # Slow enough that the batch is still running when the first emulator stops.
    config = fast_config(state_dir=tmp_path, ms_per_request=100.0)
    lines = [chat_line(f"r{i}", f"question {i}") for i in range(10)]
    async with run_emulator(config) as first, httpx.AsyncClient(base_url=first.url, timeout=10) as http:
        batch = await openai_batch(http, lines)
        input_id = batch["input_file_id"]
    assert (tmp_path / STATE_FILE).is_file()

    async with run_emulator(fast_config(state_dir=tmp_path)) as second:
        async with httpx.AsyncClient(base_url=second.url, timeout=10) as http:
            r = await http.get(f"/v1/batches/{batch['id']}", headers=OPENAI_H)
            assert r.status_code == 200, r.text
            assert r.json()["status"] in ("validating", "in_progress")
            r = await http.get(f"/v1/files/{input_id}/content", headers=OPENAI_H)
            assert r.status_code == 200 and r.content == jsonl(lines)
            done = await openai_wait(http, batch["id"], {"completed", "failed", "expired"})
            assert done["status"] == "completed"
            assert done["request_counts"]["completed"] == 10
            output_id = done["output_file_id"]

    # The result file named before the restart is still there, with the same bytes.
    async with run_emulator(fast_config(state_dir=tmp_path)) as third:
        async with httpx.AsyncClient(base_url=third.url, timeout=10) as http:
            r = await http.get(f"/v1/batches/{batch['id']}", headers=OPENAI_H)
            assert r.json()["output_file_id"] == output_id
            out = await http.get(f"/v1/files/{output_id}/content", headers=OPENAI_H)
            assert out.status_code == 200
            assert sorted(x["custom_id"] for x in parse_jsonl(out.content)) == sorted(
                f"r{i}" for i in range(10)
            )
            listed = await http.get("/v1/batches", headers=OPENAI_H)
            assert [b["id"] for b in listed.json()["data"]] == [batch["id"]]


async def test_anthropic_results_survive_a_restart(tmp_path: Path) -> None:
    body = {
        "requests": [
            {
                "custom_id": f"a{i}",
                "params": {
                    "model": "claude-3-5-haiku-latest",
                    "max_tokens": 16,
                    "messages": [{"role": "user", "content": f"hi {i}"}],
                },
            }
            for i in range(3)
        ]
    }
    async with run_emulator(fast_config(state_dir=tmp_path)) as first:
        async with httpx.AsyncClient(base_url=first.url, timeout=10) as http:
            r = await http.post("/v1/messages/batches", headers=ANTHROPIC_H, json=body)
            assert r.status_code == 200, r.text
            batch_id = r.json()["id"]
    async with run_emulator(fast_config(state_dir=tmp_path)) as second:
        async with httpx.AsyncClient(base_url=second.url, timeout=10) as http:
            for _ in range(200):
                r = await http.get(f"/v1/messages/batches/{batch_id}", headers=ANTHROPIC_H)
                if r.json()["processing_status"] == "ended":
                    break
                await asyncio.sleep(0.02)
            assert r.json()["processing_status"] == "ended"
            res = await http.get(f"/v1/messages/batches/{batch_id}/results", headers=ANTHROPIC_H)
            assert sorted(x["custom_id"] for x in parse_jsonl(res.content)) == ["a0", "a1", "a2"]


async def test_without_a_state_dir_nothing_is_kept(tmp_path: Path) -> None:
    async with run_emulator(fast_config()) as first, httpx.AsyncClient(base_url=first.url) as http:
        batch = await openai_batch(http, [chat_line("r0")])
    async with run_emulator(fast_config()) as second, httpx.AsyncClient(base_url=second.url) as http:
        r = await http.get(f"/v1/batches/{batch['id']}", headers=OPENAI_H)
        assert r.status_code == 404


async def test_an_unreadable_state_file_is_set_aside(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_bytes(b"not a pickle")
    async with (
        run_emulator(fast_config(state_dir=tmp_path)) as emu,
        httpx.AsyncClient(base_url=emu.url) as http,
    ):
        r = await http.get("/v1/batches", headers=OPENAI_H)
        assert r.status_code == 200 and r.json()["data"] == []
    assert (tmp_path / (STATE_FILE + ".bad")).read_bytes() == b"not a pickle"


async def test_a_change_is_on_disk_shortly_after_it_without_a_shutdown(tmp_path: Path) -> None:
    from durabatch.emulator import EmulatorState
    from durabatch.emulator.persist import FLUSH_SECONDS, load_state

    async with (
        run_emulator(fast_config(state_dir=tmp_path)) as emu,
        httpx.AsyncClient(base_url=emu.url) as http,
    ):
        batch = await openai_batch(http, [chat_line("r0")])
        await asyncio.sleep(FLUSH_SECONDS + 0.5)
        # What a crash right now would leave behind: read it as a new emulator would.
        seen = EmulatorState(fast_config())
        assert load_state(seen, tmp_path)
        assert batch["id"] in seen.batches
        assert batch["input_file_id"] in seen.openai_files.files
        # The first read of the ended batch names its result files, which is saved; later status
        # reads change nothing that is saved, and the file is not rewritten for them.
        done = await http.get(f"/v1/batches/{batch['id']}", headers=OPENAI_H)
        assert done.json()["status"] == "completed" and done.json()["output_file_id"]
        await asyncio.sleep(FLUSH_SECONDS + 0.3)
        seen = EmulatorState(fast_config())
        assert load_state(seen, tmp_path)
        assert seen.batches[batch["id"]].output_file_id == done.json()["output_file_id"]
        written = (tmp_path / STATE_FILE).stat().st_mtime_ns
        for _ in range(3):
            assert (await http.get(f"/v1/batches/{batch['id']}", headers=OPENAI_H)).status_code == 200
        await asyncio.sleep(FLUSH_SECONDS + 0.3)
        assert (tmp_path / STATE_FILE).stat().st_mtime_ns == written


@pytest.mark.parametrize(
    "command",
    [
        [str(Path(sys.executable).parent / "durabatch"), "emulator"],
        [sys.executable, "-m", "durabatch.emulator"],
    ],
    ids=["durabatch emulator", "python -m durabatch.emulator"],
)
def test_the_command_line_keeps_batches_in_its_state_dir(tmp_path: Path, command: list[str]) -> None:
    def start() -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(
            [*command, "--port", "0", "--api-key", KEY, "--state-dir", str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on" in line, line
        return proc, line.rsplit(" ", 1)[1].strip()

    def stop(proc: subprocess.Popen[str]) -> None:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.stdout is not None:
                proc.stdout.close()  # left open, the pipe is a ResourceWarning

    proc, url = start()
    try:
        up = httpx.post(
            f"{url}/v1/files",
            headers=OPENAI_H,
            files={"file": ("in.jsonl", jsonl([chat_line("r0")]))},
            data={"purpose": "batch"},
        ).raise_for_status()
        body = {
            "input_file_id": up.json()["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        }
        batch_id = (
            httpx.post(f"{url}/v1/batches", headers=OPENAI_H, json=body).raise_for_status().json()["id"]
        )
    finally:
        stop(proc)
    proc, url = start()
    try:
        r = httpx.get(f"{url}/v1/batches/{batch_id}", headers=OPENAI_H)
        assert r.status_code == 200, r.text
    finally:
        stop(proc)


async def test_a_restart_does_not_send_a_batch_ended_webhook_again(tmp_path: Path) -> None:
    import base64

    from aiohttp import web

    received: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(request.headers["webhook-id"])
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks/{provider}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    hooks = {
        "webhook_url": f"http://127.0.0.1:{port}/hooks/{{provider}}",
        "webhook_secret": "whsec_" + base64.b64encode(b"state-dir-test-secret-32-bytes!!").decode(),
    }
    try:
        async with run_emulator(fast_config(state_dir=tmp_path, **hooks)) as emu:
            async with httpx.AsyncClient(base_url=emu.url) as http:
                batch = await openai_batch(http, [chat_line("r0")])
                await openai_wait(http, batch["id"], {"completed"})
                for _ in range(100):
                    if received:
                        break
                    await asyncio.sleep(0.05)
        assert len(received) == 1, received
        async with run_emulator(fast_config(state_dir=tmp_path, **hooks)) as emu:
            async with httpx.AsyncClient(base_url=emu.url) as http:
                r = await http.get(f"/v1/batches/{batch['id']}", headers=OPENAI_H)
                assert r.json()["status"] == "completed"
            await asyncio.sleep(0.5)  # several turns of the emulator's webhook watcher
        assert len(received) == 1, "the event was sent before the restart, not again after it"
    finally:
        await runner.cleanup()
