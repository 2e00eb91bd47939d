"""`python -m durabatch.emulator --host 127.0.0.1 --port N --api-key KEY`."""

from __future__ import annotations

import argparse
from pathlib import Path

from durabatch.emulator.server import serve_forever


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m durabatch.emulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8089)
    p.add_argument("--api-key", action="append", dest="api_keys", default=None)
    p.add_argument("--validating-seconds", type=float, default=0.5)
    p.add_argument("--ms-per-request", type=float, default=1.0)
    p.add_argument("--finalizing-seconds", type=float, default=0.5)
    p.add_argument("--expire-after-seconds", type=float, default=86400.0)
    p.add_argument("--state-dir", type=Path, default=None, help="keep batches and files here across restarts")
    p.add_argument("--rpm", type=int, default=None, help="real-time calls per minute per provider")
    p.add_argument("--tpm", type=int, default=None, help="real-time tokens per minute per provider")
    p.add_argument(
        "--openai-enqueued-token-limit",
        type=int,
        default=None,
        help="OpenAI: prompt tokens enqueued per model across unfinished batches",
    )
    a = p.parse_args(argv)
    serve_forever(
        host=a.host,
        port=a.port,
        api_keys=a.api_keys or ["test-key"],
        validating_seconds=a.validating_seconds,
        ms_per_request=a.ms_per_request,
        finalizing_seconds=a.finalizing_seconds,
        expire_after_seconds=a.expire_after_seconds,
        state_dir=a.state_dir,
        realtime_rpm=a.rpm,
        realtime_tpm=a.tpm,
        openai_enqueued_token_limit=a.openai_enqueued_token_limit,
    )


if __name__ == "__main__":
    main()
