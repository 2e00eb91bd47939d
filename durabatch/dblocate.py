"""Where the store is, for a client: found the same way by the CLI and `BatchClient`.

An explicit URL, else DURABATCH_DATABASE_URL, else the embedded PostgreSQL of a `durabatch dev`
that runs on the data dir, else `DatabaseNotConfigured` - never a new, empty embedded database
(a client that started one would read an empty store and leave a server running).
"""

from __future__ import annotations

import os
from pathlib import Path

from durabatch.settings import Settings

__all__ = ["DatabaseNotConfigured", "find_database_url", "running_stack_postgres"]


class DatabaseNotConfigured(LookupError):
    """No database setting and no running `durabatch dev` on the data dir; the message says what to set."""


def running_stack_postgres(data_dir: Path) -> Path | None:
    """The data directory of the embedded PostgreSQL that a `durabatch dev` on `data_dir` runs, if
    its server process is alive (a `postmaster.pid` left by a crash does not count)."""
    pgdata = (data_dir / "postgres").resolve()
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, run by another user (the embedded server may run as its own user)
    return pgdata


def find_database_url(settings: Settings, explicit: str | None = None) -> str:
    """The store's URL: `explicit`, the settings' DURABATCH_DATABASE_URL, or the running dev stack's."""
    if explicit:
        return explicit
    if settings.database_url:
        return settings.database_url
    data_dir = settings.data_dir.resolve()
    if running_stack_postgres(data_dir) is None:
        raise DatabaseNotConfigured(
            f"PostgreSQL is not configured and no `durabatch dev` database runs under {data_dir}. "
            "Start the stack with `durabatch dev`, or set DURABATCH_DATABASE_URL (or DURABATCH_DATA_DIR "
            "to the data dir of a running stack)."
        )
    from durabatch.store.embedded import embedded_database_url

    # The server is running: this finds it and returns its URL, starting nothing.
    return embedded_database_url(data_dir)
