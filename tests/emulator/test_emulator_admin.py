"""Admin API: hold/advance, clock, stats, reset; and the module entry point."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx

from durabatch.emulator import EmulatorConfig, run_emulator
from tests.emulator.helpers import ANTHROPIC_H, GEMINI_H, OPENAI_H, chat_line, openai_batch, openai_wait


async def test_hold_then_advance_to_completed(http: httpx.AsyncClient) -> None:
    b = await openai_batch(http, [chat_line("a"), chat_line("b")])
    r = await http.post(f"/_emulator/batches/{b['id']}/hold")
    assert r.json()["held"] is True
    await asyncio.sleep(0.2)
    assert (await http.get(f"/v1/batches/{b['id']}", headers=OPENAI_H)).json()["status"] == "validating"
    await http.post(f"/_emulator/batches/{b['id']}/advance", json={"to": "finalizing"})
    await asyncio.sleep(0.2)
    fin = (await http.get(f"/v1/batches/{b['id']}", headers=OPENAI_H)).json()
    assert fin["status"] == "finalizing" and fin["request_counts"]["completed"] == 2
    await http.post(f"/_emulator/batches/{b['id']}/advance", json={"to": "completed"})
    done = (await http.get(f"/v1/batches/{b['id']}", headers=OPENAI_H)).json()
    assert done["status"] == "completed" and done["output_file_id"]


async def test_release_resumes_progress(http: httpx.AsyncClient) -> None:
    b = await openai_batch(http, [chat_line("a")])
    await http.post(f"/_emulator/batches/{b['id']}/hold")
    await http.post(f"/_emulator/batches/{b['id']}/release")
    assert (await openai_wait(http, b["id"], {"completed"}))["status"] == "completed"


async def test_advance_to_failed_and_expired(http: httpx.AsyncClient) -> None:
    b1 = await openai_batch(http, [chat_line("a")])
    await http.post(f"/_emulator/batches/{b1['id']}/advance", json={"to": "failed"})
    f = (await http.get(f"/v1/batches/{b1['id']}", headers=OPENAI_H)).json()
    assert f["status"] == "failed" and f["errors"]["data"][0]["code"] == "batch_failed"
    b2 = await openai_batch(http, [chat_line("a")])
    await http.post(f"/_emulator/batches/{b2['id']}/advance", json={"to": "expired"})
    e = (await http.get(f"/v1/batches/{b2['id']}", headers=OPENAI_H)).json()
    assert e["status"] == "expired" and e["error_file_id"] and e["output_file_id"] is None
    bad = await http.post(f"/_emulator/batches/{b2['id']}/advance", json={"to": "nowhere"})
    assert bad.status_code == 400


async def test_stats_count_batches_tags_downloads_requests(http: httpx.AsyncClient) -> None:
    b = await openai_batch(http, [chat_line("a")], metadata={"durabatch_shard": "s-1"})
    await openai_batch(http, [chat_line("a")], metadata={"durabatch_shard": "s-1"})
    done = await openai_wait(http, b["id"], {"completed"})
    await http.get(f"/v1/files/{done['output_file_id']}/content", headers=OPENAI_H)
    await http.post(
        "/v1/messages/batches",
        headers=ANTHROPIC_H,
        json={"requests": [{"custom_id": "a", "params": {"model": "c", "max_tokens": 5, "messages": []}}]},
    )
    await http.post(
        "/v1beta/models/m:batchGenerateContent",
        headers=GEMINI_H,
        json={"batch": {"displayName": "nightly", "inputConfig": {"requests": {"requests": []}}}},
    )
    s = (await http.get("/_emulator/stats")).json()
    assert s["batches_created"] == {"openai": 2, "anthropic": 1, "gemini": 1}
    assert s["batches_by_tag"]["openai"] == {"s-1": 2}
    assert s["batches_by_tag"]["gemini"] == {"nightly": 1}
    assert s["downloads"] == {"openai": 1}
    assert s["requests"]["openai:batches.create"] == 2 and s["requests"]["openai:batches.retrieve"] >= 1
    assert s["requests"]["gemini:batches.create"] == 1
    await http.post("/_emulator/reset")
    s = (await http.get("/_emulator/stats")).json()
    assert (
        s["batches_created"] == {} and (await http.get("/v1/batches", headers=OPENAI_H)).json()["data"] == []
    )


async def test_admin_rejects_bad_fault(http: httpx.AsyncClient) -> None:
    r = await http.post("/_emulator/faults", json={"fault": "nope"})
    assert r.status_code == 400
    assert (await http.get("/_emulator/batches/batch_none")).status_code == 404


async def test_every_key_works_for_every_provider() -> None:
    async with (
        run_emulator(EmulatorConfig(api_keys=["k1", "k2"])) as emu,
        httpx.AsyncClient(base_url=emu.url) as c,
    ):
        for key in ("k1", "k2"):
            assert (await c.get("/v1/batches", headers={"Authorization": f"Bearer {key}"})).status_code == 200
            assert (await c.get("/v1beta/batches", params={"key": key})).status_code == 200
            h = {"x-api-key": key, "anthropic-version": "2023-06-01"}
            assert (await c.get("/v1/messages/batches", headers=h)).status_code == 200
        r = await c.get("/v1/batches")
        assert r.status_code == 401 and r.json()["error"]["message"].startswith(
            "You didn't provide an API key"
        )


def test_module_entry_point_prints_url_and_stops_on_sigterm() -> None:
    # the context manager closes the stdout pipe (left open, it is a ResourceWarning)
    with subprocess.Popen(
        [sys.executable, "-m", "durabatch.emulator", "--host", "127.0.0.1", "--port", "0", "--api-key", "k"],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line.startswith("durabatch emulator listening on http://127.0.0.1:")
            url = line.rsplit(" ", 1)[1]
            r = httpx.get(url + "/v1/batches", headers={"Authorization": "Bearer k"})
            assert r.status_code == 200
        finally:
            proc.terminate()
            assert proc.wait(timeout=10) == 0


async def test_status_reads_count_each_batchs_gets(http: httpx.AsyncClient) -> None:
    polled = await openai_batch(http, [chat_line("a")])
    other = await openai_batch(http, [chat_line("a")])
    for _ in range(3):
        assert (await http.get(f"/v1/batches/{polled['id']}", headers=OPENAI_H)).status_code == 200
    await http.get("/v1/batches", headers=OPENAI_H)  # a listing is no status read of any one batch
    anthropic = (
        await http.post(
            "/v1/messages/batches",
            headers=ANTHROPIC_H,
            json={
                "requests": [{"custom_id": "a", "params": {"model": "c", "max_tokens": 5, "messages": []}}]
            },
        )
    ).json()
    await http.get(f"/v1/messages/batches/{anthropic['id']}", headers=ANTHROPIC_H)
    gemini = (
        await http.post(
            "/v1beta/models/m:batchGenerateContent",
            headers=GEMINI_H,
            json={"batch": {"displayName": "n", "inputConfig": {"requests": {"requests": []}}}},
        )
    ).json()
    await http.get(f"/v1beta/{gemini['name']}", headers=GEMINI_H)
    await http.get(f"/v1beta/{gemini['name']}", headers=GEMINI_H)
    reads = (await http.get("/_emulator/stats")).json()["status_reads"]
    assert reads == {polled["id"]: 3, anthropic["id"]: 1, gemini["name"]: 2}
    assert (await http.get(f"/_emulator/batches/{polled['id']}")).json()["status_reads"] == 3
    assert (await http.get(f"/_emulator/batches/{other['id']}")).json()["status_reads"] == 0
