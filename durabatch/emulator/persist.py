"""Keeping the emulator's batches and files on disk, so a restarted emulator carries them on.

With `EmulatorConfig.state_dir` set, the state is loaded at start, written again shortly after
each change (`EmulatorState.touch()`), and once more on shutdown. Each write goes to a temporary
file that is then renamed over `state.pickle`, so a crash mid-write leaves the previous state whole.

Progress is a function of the clock (see timeline.py), not of background work, so saving the
batches' inputs and timelines is enough: after a restart every batch is where wall time says
it should be, as if the emulator had never stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import tempfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from durabatch.emulator.state import EmulatorState

__all__ = ["FLUSH_SECONDS", "STATE_FILE", "autosave", "load_state", "save_state"]

log = logging.getLogger(__name__)

STATE_FILE = "state.pickle"
#: how soon after a change the state is written; changes in between are written together
FLUSH_SECONDS = 0.5
#: bumped when the saved layout changes; a file of another version is set aside, not loaded
_VERSION = 1


def _snapshot(state: EmulatorState) -> bytes:
    # Pickle because batches hold dataclasses, enums and the lazily generated result files
    # (functools.partial over module functions); the file lives in the emulator's own state dir,
    # which is trusted like the code that wrote it.
    payload: dict[str, Any] = {
        "version": _VERSION,
        "batches": state.batches,
        "order": state.order,
        "openai_files": state.openai_files.files,
        "gemini_files": state.gemini_files.files,
        "clock_offset": state.clock.offset,
        # which `__flaky` requests already failed: after a restart they still succeed
        "flaky_failed": state.flaky_failed,
    }
    return pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)


class _Writer:
    """Writes snapshots in the order they were taken: a flush still running in its thread when
    the emulator stops must not land after (and over) the final, newer snapshot."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._taken = 0
        self._written = 0

    def take(self, state: EmulatorState) -> tuple[int, bytes]:
        self._taken += 1
        return self._taken, _snapshot(state)

    def write(self, seq: int, data: bytes) -> None:
        with self._lock:
            if seq < self._written:
                return
            _write_atomically(self.directory, data)
            self._written = seq


def _write_atomically(directory: Path, data: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".state-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, directory / STATE_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_state(state: EmulatorState, directory: Path) -> None:
    """Write the state now (blocking)."""
    _write_atomically(directory, _snapshot(state))


def load_state(state: EmulatorState, directory: Path) -> bool:
    """Fill `state` from `directory` if it holds a saved state; False if there was none to load.

    An unreadable file (another version, cut short by hand) is renamed `state.pickle.bad` and the
    emulator starts empty, rather than refusing to start.
    """
    path = directory / STATE_FILE
    if not path.exists():
        return False
    try:
        payload = pickle.loads(path.read_bytes())
        if not isinstance(payload, dict) or payload.get("version") != _VERSION:
            raise ValueError(f"not a version {_VERSION} emulator state")
    except Exception as exc:
        log.warning("emulator state %s unreadable (%s); starting empty", path, exc)
        os.replace(path, path.with_name(STATE_FILE + ".bad"))
        return False
    state.batches.update(payload["batches"])
    for provider, ids in payload["order"].items():
        state.order.setdefault(provider, []).extend(ids)
    state.openai_files.files.update(payload["openai_files"])
    state.gemini_files.files.update(payload["gemini_files"])
    state.clock.advance(max(0.0, float(payload["clock_offset"]) - state.clock.offset))
    state.flaky_failed.update(payload.get("flaky_failed", ()))
    return True


@contextlib.asynccontextmanager
async def autosave(state: EmulatorState, directory: Path) -> AsyncIterator[None]:
    """Load the saved state, then keep it saved while the block runs and once more at its end."""
    load_state(state, directory)
    writer = _Writer(directory)

    async def flusher() -> None:
        while True:
            await state.changed.wait()
            await asyncio.sleep(FLUSH_SECONDS)
            state.changed.clear()
            # Snapshot on the loop (no route runs meanwhile), write in a thread.
            seq, data = writer.take(state)
            try:
                await asyncio.to_thread(writer.write, seq, data)
            except OSError as exc:
                log.warning("could not save the emulator state to %s: %s", directory, exc)

    task = asyncio.create_task(flusher())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        writer.write(*writer.take(state))
