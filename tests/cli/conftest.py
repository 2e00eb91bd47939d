"""A real local stack for the command line: `durabatch dev` run as a subprocess on free ports with a
temporary data dir (Temporal dev server, embedded PostgreSQL, emulator, worker), and a helper that
runs `durabatch ...` as a subprocess against it, so exit codes and output are what a shell sees."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

CLI = str(Path(sys.executable).parent / "durabatch")
READY = "Press Ctrl-C to stop."


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment minus any durabatch setting or provider key, plus `overrides`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DURABATCH_") and not k.endswith("_API_KEY") and k != "COLUMNS"
    }
    env["COLUMNS"] = "200"  # rich tables and messages on one line each
    env.update(overrides)
    return env


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False
    )


@dataclass
class DevProcess:
    """A running `durabatch dev`."""

    proc: subprocess.Popen[str]
    data_dir: Path
    temporal_port: int
    ui_port: int
    emulator_port: int
    output: list[str] = field(default_factory=list)
    database_url: str = ""

    @property
    def env(self) -> dict[str, str]:
        return clean_env(
            DURABATCH_TEMPORAL_ADDRESS=f"127.0.0.1:{self.temporal_port}",
            DURABATCH_DATABASE_URL=self.database_url,
        )

    def stop(self, timeout: float = 60) -> tuple[int, str]:
        """SIGINT, as Ctrl-C does; returns (exit code, everything it printed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        rest, _ = self.proc.communicate(timeout=timeout)
        self.output.append(rest)
        return self.proc.returncode, "".join(self.output)


def start_dev(
    data_dir: Path, ports: tuple[int, int, int] | None = None, attempts: int = 3, columns: int = 200
) -> DevProcess:
    """Start `durabatch dev`; a free port taken in the meantime (the dev server also picks random
    ports of its own) is retried on new ports, or after a pause when `ports` are fixed."""
    for attempt in range(attempts):
        try:
            return _start_dev(data_dir, ports or (free_port(), free_port(), free_port()), columns=columns)
        except _PortRace:
            if attempt == attempts - 1:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


class _PortRace(AssertionError):
    pass


def _start_dev(
    data_dir: Path, ports: tuple[int, int, int], timeout: float = 90, columns: int = 200
) -> DevProcess:
    temporal_port, ui_port, emulator_port = ports
    proc = subprocess.Popen(
        [
            CLI,
            "dev",
            "--data-dir",
            str(data_dir),
            "--temporal-port",
            str(temporal_port),
            "--ui-port",
            str(ui_port),
            "--emulator-port",
            str(emulator_port),
        ],
        env=clean_env(COLUMNS=str(columns)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    dev = DevProcess(proc, data_dir, temporal_port, ui_port, emulator_port)
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            code, text = proc.wait(), "".join(dev.output)
            log = data_dir / "temporal.log"
            if "already in use" in text or (log.exists() and "address already in use" in log.read_text()):
                log.unlink(missing_ok=True)
                raise _PortRace(text)
            raise AssertionError(f"durabatch dev exited ({code}):\n{text}")
        dev.output.append(line)
        match = re.search(r"export DURABATCH_DATABASE_URL='([^']+)'", line)
        if match:
            dev.database_url = match.group(1)
        if READY in line:
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"durabatch dev did not start:\n{''.join(dev.output)}")
    assert dev.database_url, "".join(dev.output)
    return dev


@contextmanager
def data_dir() -> Iterator[Path]:
    """A data dir the embedded PostgreSQL can use: as root it runs as another user, who must be able
    to reach it (pytest's own temp dirs are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="durabatch-cli-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="package")
def dev() -> Iterator[DevProcess]:
    """One `durabatch dev` shared by the CLI and client tests, stopped when they are done."""
    with data_dir() as path:
        process = start_dev(path)
        yield process
        code, output = process.stop()
        assert code == 0, output


def chat_lines(n: int, prefix: str = "r") -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"{prefix}{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"question {i}"}]},
        }
        for i in range(n)
    ]


@pytest.fixture
def requests_file(tmp_path: Path) -> Path:
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in chat_lines(12)))
    return path
