"""The `durabatch` commands that run parts of the stack: worker, emulator, hooks, dev, db migrate."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from durabatch.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_NOT_COMPLETED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    app,
    cli_settings,
    database_url,
    db_app,
    fail,
    out,
    run,
    unreachable_temporal,
)

__all__ = ["db_migrate", "dev", "emulator", "hooks", "worker"]


@app.command()
def worker() -> None:
    """Run a worker until SIGINT/SIGTERM (migrates the store and registers search attributes first).

    With DURABATCH_SWEEP_SECONDS set it also starts one account status sweep per provider
    (docs/webhooks.md). Settings come from DURABATCH_* variables (docs/deploy.md).

    Example: DURABATCH_TEMPORAL_ADDRESS=temporal:7233 durabatch worker
    """
    from durabatch.service import run_worker
    from durabatch.store import StoreError
    from durabatch.telemetry.logs import configure_logging
    from durabatch.temporal import SearchAttributesMissing

    settings = cli_settings()
    configure_logging(settings.log_level)
    try:
        asyncio.run(run_worker(settings))
    except KeyboardInterrupt:
        pass
    except SearchAttributesMissing as exc:
        raise fail(f"worker could not start: {exc}", EXIT_USAGE) from None
    except (OSError, StoreError) as exc:
        raise fail(f"worker could not start: {exc}", EXIT_UNREACHABLE) from None
    except RuntimeError as exc:
        # The Temporal SDK reports an unreachable server as RuntimeError("Failed client connect: ...").
        if "client connect" not in str(exc):
            raise
        raise unreachable_temporal(settings, exc) from None


@app.command()
def emulator(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8089,
    api_key: Annotated[
        list[str] | None, typer.Option("--api-key", help="Accepted API key (repeatable).")
    ] = None,
    validating_seconds: Annotated[float, typer.Option(help="Seconds a batch validates.")] = 0.5,
    ms_per_request: Annotated[float, typer.Option(help="Milliseconds per request processed.")] = 1.0,
    finalizing_seconds: Annotated[float, typer.Option(help="Seconds a batch finalizes.")] = 0.5,
    expire_after_seconds: Annotated[float, typer.Option(help="Seconds until a batch expires.")] = 86400.0,
    rpm: Annotated[
        int | None,
        typer.Option(help="Real-time calls per minute per provider; past it 429 (default: unlimited)."),
    ] = None,
    tpm: Annotated[
        int | None,
        typer.Option(help="Real-time tokens per minute per provider; past it 429 (default: unlimited)."),
    ] = None,
    openai_enqueued_token_limit: Annotated[
        int | None,
        typer.Option(
            help="OpenAI: prompt tokens enqueued per model across unfinished batches; a batch past it "
            "fails with token_limit_exceeded (default: unlimited)."
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="Keep batches and files in this directory across restarts (default: in memory only)."
        ),
    ] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(help="POST signed batch-ended webhooks here ({provider} becomes openai or gemini)."),
    ] = None,
    webhook_secret: Annotated[
        str | None, typer.Option(help="Signing secret (whsec_...) for --webhook-url.")
    ] = None,
    webhook_drop: Annotated[bool, typer.Option("--webhook-drop", help="Never send the webhooks.")] = False,
    webhook_delay: Annotated[float, typer.Option(help="Seconds to hold each webhook back.")] = 0.0,
    webhook_duplicates: Annotated[int, typer.Option(help="Extra copies of every webhook.")] = 0,
) -> None:
    """Run the provider emulator (OpenAI, Anthropic and Gemini batch and real-time APIs on one port).

    With --state-dir, a restarted emulator carries on the batches it held, as if it had not stopped.

    Example: durabatch emulator --port 8089 --api-key test-key --state-dir .durabatch/emulator --rpm 500
    """
    from durabatch.emulator import serve_forever

    if webhook_url and not webhook_secret:
        raise fail("--webhook-url needs --webhook-secret to sign the webhooks with", EXIT_USAGE)

    serve_forever(
        host=host,
        port=port,
        api_keys=api_key or ["test-key"],
        validating_seconds=validating_seconds,
        ms_per_request=ms_per_request,
        finalizing_seconds=finalizing_seconds,
        expire_after_seconds=expire_after_seconds,
        realtime_rpm=rpm,
        realtime_tpm=tpm,
        openai_enqueued_token_limit=openai_enqueued_token_limit,
        state_dir=state_dir,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        webhook_drop=webhook_drop,
        webhook_delay_seconds=webhook_delay,
        webhook_duplicates=webhook_duplicates,
    )


@app.command()
def dev(
    data_dir: Annotated[Path, typer.Option(help="Where Temporal's and PostgreSQL's data live.")] = Path(
        ".durabatch"
    ),
    temporal_port: Annotated[int, typer.Option(help="Temporal frontend port.")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port.")] = 8233,
    emulator_port: Annotated[int, typer.Option(help="Provider emulator port.")] = 8089,
    no_emulator: Annotated[bool, typer.Option("--no-emulator", help="Use the real providers.")] = False,
) -> None:
    """Run the whole local stack: Temporal dev server + Web UI, embedded PostgreSQL, emulator, worker.

    Ctrl-C stops everything; running it again reuses the data in --data-dir. One stack per
    data dir: a second one on the same dir refuses, naming the running one's PID and ports.

    Example: durabatch dev --data-dir .durabatch
    """
    from durabatch.devstack import DevStack, DevStackConfig, PortInUse, StackRunning
    from durabatch.telemetry.logs import configure_logging

    configure_logging("WARNING")
    stack = DevStack(
        DevStackConfig(
            data_dir=data_dir,
            temporal_port=temporal_port,
            ui_port=ui_port,
            emulator_port=emulator_port,
            with_emulator=not no_emulator,
        )
    )

    async def go() -> None:
        try:
            await stack.start()
        except (PortInUse, StackRunning) as exc:
            await stack.stop()
            raise fail(str(exc), EXIT_USAGE) from None
        except Exception as exc:
            # Whatever did start (the embedded PostgreSQL, the emulator) must not outlive us.
            await stack.stop()
            raise fail(f"the dev stack did not start: {exc}", EXIT_NOT_COMPLETED) from None
        out.print("[bold green]durabatch dev stack is up[/]")
        # soft_wrap: lines are never broken by us, so a URL wider than the terminal stays whole
        # (the terminal folds it, and copying it gives the URL back).
        out.print(stack.describe(), highlight=False, soft_wrap=True)
        out.print("\nPoint the CLI or a worker at it from another shell:", highlight=False, soft_wrap=True)
        out.print(
            f"  export DURABATCH_TEMPORAL_ADDRESS={stack.temporal_address}\n"
            f"  export DURABATCH_DATABASE_URL='{stack.database_url}'",
            highlight=False,
            soft_wrap=True,
        )
        out.print("Press Ctrl-C to stop.", highlight=False)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal as _signal

        for sig in (_signal.SIGINT, _signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            out.print("stopping...", highlight=False)
            await stack.stop()
            out.print("stopped.", highlight=False)

    try:
        asyncio.run(go())
    except KeyboardInterrupt:  # Ctrl-C during start-up
        raise typer.Exit(EXIT_INTERRUPTED) from None


@app.command()
def hooks(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8090,
) -> None:
    """Receive provider webhooks (POST /hooks/openai, /hooks/gemini) and wake their batches.

    Verifies each delivery with DURABATCH_OPENAI_WEBHOOK_SECRET / DURABATCH_GEMINI_WEBHOOK_SECRET
    (Standard Webhooks), finds its batch in the store and signals it to poll now (docs/webhooks.md).
    Needs the worker's database and Temporal settings. Runs until SIGINT/SIGTERM.

    Example: DURABATCH_OPENAI_WEBHOOK_SECRET=whsec_... durabatch hooks --host 0.0.0.0 --port 8090
    """
    from durabatch.hooks import create_hooks_app
    from durabatch.hooks.server import serve_hooks

    settings = cli_settings()
    if settings.openai_webhook_secret is None and settings.gemini_webhook_secret is None:
        raise fail(
            "no webhook secret is set: set DURABATCH_OPENAI_WEBHOOK_SECRET and/or DURABATCH_GEMINI_WEBHOOK_SECRET",
            EXIT_USAGE,
        )
    database_url(settings)  # fails with exit 4 when there is no store to find batches in

    async def go() -> int:
        try:
            async with serve_hooks(create_hooks_app(settings), host, port) as url:
                out.print(f"receiving webhooks at {url}/hooks/openai and {url}/hooks/gemini", highlight=False)
                await asyncio.Event().wait()
        except (OSError, RuntimeError) as exc:
            raise fail(f"the webhook receiver did not start: {exc}", EXIT_UNREACHABLE) from None
        return EXIT_OK

    run(go)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations to DURABATCH_DATABASE_URL (or the embedded database).

    Example: DURABATCH_DATABASE_URL=postgresql://u@db/durabatch durabatch db migrate
    """
    from durabatch.store import StoreUnavailable, create_pool, migrate

    settings = cli_settings()
    url = database_url(settings)
    assert url is not None

    async def go() -> int:
        try:
            pool = await create_pool(url, min_size=1, max_size=1)
        except StoreUnavailable as exc:
            raise fail(str(exc), EXIT_UNREACHABLE) from None
        try:
            async with pool.acquire() as conn:
                applied = await migrate(conn)
        finally:
            await pool.close()
        out.print(f"applied: {', '.join(applied)}" if applied else "database is up to date", highlight=False)
        return EXIT_OK

    run(go)
