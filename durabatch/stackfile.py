"""The running-stack file: which `durabatch dev` owns a data dir, and how to reach it.

A dev stack takes an exclusive `fcntl.flock` on `DATA_DIR/dev.lock` for as long as it runs and
writes `DATA_DIR/stack.json` (ports, URLs, PID). A second stack on the same dir fails to take the
lock and refuses before touching the dir's PostgreSQL or temporal.db. Other commands read
`stack.json` to find the running stack's database URL and Temporal address. The lock, not the
file, is the truth: a stale file left by a killed stack is ignored because its lock is free.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

__all__ = [
    "LOCK_NAME",
    "STACK_FILE_NAME",
    "RunningStack",
    "StackLock",
    "StackRunning",
    "acquire",
    "read_running",
]

LOCK_NAME = "dev.lock"
STACK_FILE_NAME = "stack.json"


@dataclass(frozen=True)
class RunningStack:
    pid: int
    temporal_address: str
    database_url: str
    ui_url: str | None = None
    emulator_url: str | None = None
    temporal_port: int | None = None
    ui_port: int | None = None
    emulator_port: int | None = None

    def describe(self) -> str:
        ports = [f"Temporal {self.temporal_address}"]
        if self.ui_url:
            ports.append(f"Web UI {self.ui_url}")
        if self.emulator_url:
            ports.append(f"emulator {self.emulator_url}")
        return f"PID {self.pid} ({', '.join(ports)})"


class StackRunning(RuntimeError):
    """Another `durabatch dev` holds the data dir's lock."""

    def __init__(self, data_dir: Path, running: RunningStack | None) -> None:
        self.running = running
        who = running.describe() if running else "a process whose details are not readable yet"
        super().__init__(
            f"another `durabatch dev` already runs on {data_dir}: {who}. "
            "Stop it first, or use another --data-dir."
        )


def _load(path: Path) -> RunningStack | None:
    try:
        raw = json.loads(path.read_text())
        return RunningStack(**raw)
    except (OSError, ValueError, TypeError):
        return None


def _locked(data_dir: Path) -> bool:
    lock_path = data_dir / LOCK_NAME
    if not lock_path.exists():
        return False
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def read_running(data_dir: Path) -> RunningStack | None:
    """The stack running on `data_dir`, or None when no stack holds its lock."""
    if not _locked(data_dir):
        return None
    return _load(data_dir / STACK_FILE_NAME)


class StackLock:
    """The held lock of one data dir; `publish` writes the running-stack file, `release` drops both."""

    def __init__(self, data_dir: Path, handle: IO[str]) -> None:
        self.data_dir = data_dir
        self._handle: IO[str] | None = handle

    def publish(self, stack: RunningStack) -> None:
        path = self.data_dir / STACK_FILE_NAME
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(stack), indent=2) + "\n")
        os.replace(tmp, path)

    def release(self) -> None:
        if self._handle is None:
            return
        with contextlib.suppress(OSError):
            (self.data_dir / STACK_FILE_NAME).unlink()
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None


def acquire(data_dir: Path) -> StackLock:
    """Take `data_dir`'s lock or raise StackRunning naming the stack that holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / LOCK_NAME).open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StackRunning(data_dir, _load(data_dir / STACK_FILE_NAME)) from None
    return StackLock(data_dir, handle)
