"""`durabatch dev`: custom ports, prints the Web UI and database addresses, SIGINT stops it cleanly,
and a workflow started before a stop is still there, running, after the next start."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path
from typing import Any

import httpx

from durabatch.cli import EXIT_USAGE
from durabatch.devstack import DEV_API_KEY, port_in_use
from tests.cli.conftest import clean_env, data_dir, run_cli, start_dev
from tests.conftest import free_port
from tests.helpers import eventually_sync


def test_dev_stops_on_sigint_and_a_restart_keeps_running_workflows(requests_file: Path) -> None:
    batch_id = f"dev-{uuid.uuid4().hex[:8]}"
    with data_dir() as path:
        first = start_dev(path)
        ports = (first.temporal_port, first.ui_port, first.emulator_port)
        try:
            text = "".join(first.output)
            assert f"Web UI:      http://127.0.0.1:{first.ui_port}" in text
            assert f"PostgreSQL:  {first.database_url}" in text
            assert f"export DURABATCH_TEMPORAL_ADDRESS=127.0.0.1:{first.temporal_port}" in text
            assert httpx.get(f"http://127.0.0.1:{first.ui_port}/", timeout=10).status_code == 200
            # a long poll: the workflow sleeps on a durable timer across the restart
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
                "600",
                env=first.env,
            )
            assert r.returncode == 0, r.stderr
            before = _wait_submitted(first.env, batch_id)
        finally:
            code, output = first.stop()
        assert code == 0, output
        assert output.rstrip().endswith("stopped."), output
        assert not any(port_in_use(p) for p in ports[1:]), "UI and emulator ports are released"

        # On an 80-column terminal the banner's URLs (the database's is far wider) stay whole.
        second = start_dev(path, ports, columns=80)
        try:
            banner = "".join(second.output)
            assert f"PostgreSQL:  {second.database_url}\n" in banner, banner
            assert f"Web UI:      http://127.0.0.1:{second.ui_port}\n" in banner, banner
            r = run_cli("status", batch_id, "--json", env=second.env)
            assert r.returncode == 0, r.stderr
            after = json.loads(r.stdout)
            assert after["status"] in ("submitted", "in_progress")
            assert after["shards"][0]["provider_batch_id"] == before["shards"][0]["provider_batch_id"]
            # The emulator kept its provider batch under the data dir, so the poll finds it again.
            assert (path / "emulator" / "state.pickle").is_file()
            provider_batch_id = before["shards"][0]["provider_batch_id"]
            r2 = httpx.get(
                f"http://127.0.0.1:{second.emulator_port}/v1/batches/{provider_batch_id}",
                headers={"Authorization": f"Bearer {DEV_API_KEY}"},
                timeout=10,
            )
            assert r2.status_code == 200, r2.text
            assert r2.json()["request_counts"]["total"] in (0, 12)
            r = run_cli("list", "--json", env=second.env)
            [row] = [json.loads(line) for line in r.stdout.splitlines() if batch_id in line]
            assert row["workflow_status"] == "RUNNING"
            r = run_cli("results", batch_id, env=second.env)
            assert r.returncode == 0, "the batch's rows survived in PostgreSQL"
        finally:
            code, output = second.stop()
        assert code == 0, output


def _wait_submitted(env: dict[str, str], batch_id: str, timeout: float = 30) -> dict[str, Any]:
    def fetch() -> dict[str, Any]:
        r = run_cli("status", batch_id, "--json", env=env)
        # before the workflow exists `status` exits non-zero: keep its words as the value seen
        st: dict[str, Any] = json.loads(r.stdout) if r.returncode == 0 else {"shards": [], "cli": r.stderr}
        return st

    st = eventually_sync(
        fetch,
        lambda s: bool(s["shards"] and s["shards"][0].get("provider_batch_id")),
        timeout,
        what="the first shard sent",
    )
    return st


def test_dev_names_the_port_already_in_use() -> None:
    with data_dir() as path, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        r = run_cli(
            "dev",
            "--data-dir",
            str(path),
            "--temporal-port",
            str(busy),
            "--ui-port",
            str(free_port()),
            "--emulator-port",
            str(free_port()),
            env=clean_env(),
        )
        assert r.returncode == EXIT_USAGE, r.stdout + r.stderr
        assert f"Temporal port {busy} already in use" in r.stderr, r.stderr
        assert "--temporal-port" in r.stderr
        assert not (path / "postgres").exists(), "nothing was started"


def test_a_second_dev_on_the_same_data_dir_is_refused_and_the_first_keeps_working() -> None:
    with data_dir() as path:
        first = start_dev(path)
        try:
            stack = json.loads((path / "stack.json").read_text())
            assert stack["pid"] == first.proc.pid
            assert stack["database_url"] == first.database_url
            assert stack["temporal_address"] == f"127.0.0.1:{first.temporal_port}"
            # other ports: the refusal must come from the data dir's lock, not from a port clash
            r = run_cli(
                "dev",
                "--data-dir",
                str(path),
                "--temporal-port",
                str(free_port()),
                "--ui-port",
                str(free_port()),
                "--emulator-port",
                str(free_port()),
                env=clean_env(),
            )
            assert r.returncode == EXIT_USAGE, r.stdout + r.stderr
            assert f"PID {first.proc.pid}" in r.stderr, r.stderr
            assert f"127.0.0.1:{first.temporal_port}" in r.stderr, r.stderr
            assert first.proc.poll() is None, "the first stack is still running"
            listed = run_cli("list", "--json", env=first.env)
            assert listed.returncode == 0, listed.stderr
        finally:
            code, output = first.stop()
        assert code == 0, output
        assert not (path / "stack.json").exists(), "a stopped stack removes its running-stack file"
