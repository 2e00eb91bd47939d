"""The `durabatch` command line.

Exit codes (scripts rely on them):
    0  success (with --wait: the batch completed)
    1  the batch ended but not completed (failed, expired, cancelled), or an unexpected error
    2  bad usage or bad input (a file that does not exist, a bad setting)
    3  no such batch
    4  the stack is not reachable (Temporal or PostgreSQL)
    5  with --wait: the batch completed but a completion handler failed (see `durabatch redispatch`)
    130 interrupted while waiting (the batch keeps running)
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from durabatch.console import (
    Detached,
    HandlersFailed,
    handler_line,
    status_table,
    summary_table,
    wait_with_progress,
)
from durabatch.contract import BATCH_ID_RE, PROVIDERS
from durabatch.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from durabatch.client import BatchClient, BatchHandle

__all__ = ["app", "main", "summary_table", "wait_with_progress"]

T = TypeVar("T")

EXIT_OK, EXIT_NOT_COMPLETED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_UNREACHABLE, EXIT_INTERRUPTED = (
    0,
    1,
    2,
    3,
    4,
    130,
)
EXIT_HANDLER_FAILED = 5

#: Lines of a requests file checked before submitting (the worker validates every line anyway).
_OUTCOMES = ("succeeded", "failed", "expired", "cancelled")

app = typer.Typer(
    name="durabatch",
    help="Run LLM provider batch jobs durably on Temporal.\n\n"
    "Example: durabatch submit reqs.jsonl --provider openai --endpoint /v1/chat/completions --wait",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database commands.\n\nExample: durabatch db migrate", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None


def _unreachable_temporal(settings: Settings, exc: BaseException) -> typer.Exit:
    return _fail(
        f"cannot reach Temporal at {settings.temporal_address} ({type(exc).__name__}). "
        "Is the stack running? Start it with `durabatch dev`, or set DURABATCH_TEMPORAL_ADDRESS.",
        EXIT_UNREACHABLE,
    )


def _run(coro_fn: Callable[[], Awaitable[int]]) -> None:
    """Run a command's coroutine and exit with its code; Temporal going away mid-command exits 4."""
    from temporalio.service import RPCError, RPCStatusCode

    async def wrapped() -> int:
        return await coro_fn()

    try:
        code = asyncio.run(wrapped())
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except RPCError as exc:
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise _unreachable_temporal(_settings(), exc) from None
        raise _fail(f"Temporal refused the call: {exc.message}", EXIT_NOT_COMPLETED) from None
    raise typer.Exit(code)


async def _client(*, require_store: bool = False) -> BatchClient:
    from durabatch.client import BatchClient, StoreNotConfigured

    settings = _settings()
    try:
        return await BatchClient.connect(
            settings, _database_url(settings, required=require_store), require_store=require_store
        )
    except StoreNotConfigured as exc:
        raise _fail(str(exc), EXIT_UNREACHABLE) from None
    except Exception as exc:
        raise _unreachable_temporal(settings, exc) from None


def _database_url(settings: Settings, *, required: bool = True) -> str | None:
    """DURABATCH_DATABASE_URL, else the embedded server of a running `durabatch dev` in the data dir.

    The CLI never starts an embedded server itself: with none running it fails with exit code 4.
    """
    if settings.database_url:
        return settings.database_url
    pgdata = settings.data_dir / "postgres"
    if not (pgdata / "postmaster.pid").exists():
        if not required:
            return None
        raise _fail(
            f"PostgreSQL is not configured and no `durabatch dev` database runs under {settings.data_dir.resolve()}. "
            "Start the stack with `durabatch dev`, or set DURABATCH_DATABASE_URL (or DURABATCH_DATA_DIR).",
            EXIT_UNREACHABLE,
        )
    from durabatch.store.embedded import embedded_database_url

    return embedded_database_url(settings.data_dir)


async def _follow(handle: BatchHandle) -> int:
    from durabatch.client import BatchNotFound, BatchWorkflowFailed

    try:
        summary = await wait_with_progress(handle, out)
    except Detached:
        err.print(
            f"detached: batch {handle.batch_id} keeps running. Reattach with "
            f"`durabatch status {handle.batch_id} --wait`, or cancel it with "
            f"`durabatch cancel {handle.batch_id}`.",
            soft_wrap=True,
            highlight=False,
        )
        return EXIT_INTERRUPTED
    except BatchNotFound as exc:
        raise _fail(str(exc), EXIT_NOT_FOUND) from None
    except BatchWorkflowFailed as exc:
        raise _fail(str(exc), EXIT_NOT_COMPLETED) from None
    except HandlersFailed as exc:
        # The outcome is final; the workflow only stays open so the handler can be redispatched.
        out.print(status_table(exc.status))
        _handler_hint(handle.batch_id)
        return EXIT_NOT_COMPLETED if exc.status.status != "completed" else EXIT_HANDLER_FAILED
    out.print(summary_table(summary))
    if summary.status != "completed":
        return EXIT_NOT_COMPLETED
    if any(h.status == "failed" for h in summary.handlers):
        _handler_hint(handle.batch_id)
        return EXIT_HANDLER_FAILED
    return EXIT_OK


def _handler_hint(batch_id: str) -> None:
    err.print(
        f"error: batch {batch_id}: a completion handler failed; "
        f"rerun the failed ones with `durabatch redispatch {batch_id}`",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )


@app.command()
def submit(
    file: Annotated[
        Path,
        typer.Argument(
            help="JSONL file of requests (OpenAI, Anthropic, Gemini or short form lines); validated and "
            "staged into PostgreSQL from here, so the worker needs no access to it."
        ),
    ],
    provider: Annotated[str, typer.Option(help="openai, anthropic or gemini.")],
    endpoint: Annotated[str, typer.Option(help="e.g. /v1/chat/completions, /v1/messages, generateContent.")],
    model: Annotated[str | None, typer.Option(help="Model for lines that name none.")] = None,
    batch_id: Annotated[str | None, typer.Option(help="Your id for the batch (default: random).")] = None,
    webhook: Annotated[
        list[str] | None, typer.Option(help="URL to POST the summary to when done (repeatable).")
    ] = None,
    webhook_secret_env: Annotated[
        str | None, typer.Option(help="Worker env var holding the webhook signing secret.")
    ] = None,
    poll: Annotated[str | None, typer.Option(help="Poll schedule in seconds, e.g. 30,60,300.")] = None,
    max_age: Annotated[float | None, typer.Option(help="Seconds before the batch is expired.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Show live progress until the batch ends.")] = False,
) -> None:
    """Start a batch from a JSONL file; prints the batch id (exit 0), or with --wait follows it to the end.

    Every line is validated and the file streamed into PostgreSQL before the batch starts: a bad
    line exits 2 naming FILE:LINE and the field, and leaves no batch (the fixed file can be
    submitted with the same --batch-id).

    With --wait the exit code is 0 only if the batch completed (1 if it failed, expired or was
    cancelled; 5 if it completed but a completion handler failed, as soon as every handler has
    run); Ctrl-C stops watching and leaves the batch running (exit 130).

    Example: durabatch submit reqs.jsonl --provider openai --endpoint /v1/chat/completions --model gpt-4o-mini --wait
    """
    from durabatch.models import BatchInput

    if provider not in PROVIDERS:
        raise _fail(f"--provider must be one of {', '.join(PROVIDERS)}, got {provider!r}", EXIT_USAGE)
    if batch_id is not None and not BATCH_ID_RE.match(batch_id):
        raise _fail("--batch-id must be 1-128 characters of letters, digits, '_', '-', '.', ':'", EXIT_USAGE)
    try:
        schedule = [float(x) for x in poll.split(",")] if poll else None
    except ValueError:
        raise _fail(f"--poll must be seconds separated by commas, got {poll!r}", EXIT_USAGE) from None
    if schedule is not None and any(x <= 0 for x in schedule):
        raise _fail("--poll delays must be positive", EXIT_USAGE)
    for url in webhook or []:
        if not url.startswith(("http://", "https://")):
            raise _fail(f"--webhook must be an http(s) URL, got {url!r}", EXIT_USAGE)
    if not file.is_file():
        raise _fail(f"{file.resolve()}: no such file", EXIT_USAGE)
    handlers = [{"type": "webhook", "url": u, "secret_env": webhook_secret_env} for u in webhook or []]
    inp = BatchInput(
        batch_id=batch_id or uuid.uuid4().hex[:12],
        provider=provider,
        endpoint=endpoint,
        model=model,
        poll_schedule_seconds=schedule,
        max_age_seconds=max_age,
        handlers=handlers,
    )

    async def go() -> int:
        from durabatch.client import BatchAlreadyExists, InvalidRequestsFile
        from durabatch.contract import InvalidBatchInput

        async with await _client(require_store=True) as client:
            try:
                # Validated and staged here, before the batch exists: a refused file leaves no batch.
                handle = await client.start(inp, requests_path=file)
            except BatchAlreadyExists as exc:
                raise _fail(f"{exc}; batch ids are never reused", EXIT_USAGE) from None
            except (InvalidRequestsFile, InvalidBatchInput) as exc:
                raise _fail(f"{exc} (nothing was started)", EXIT_USAGE) from None
            out.print(f"started batch [bold]{handle.batch_id}[/] (workflow {handle.workflow_id})")
            if not wait:
                out.print(f"follow it with `durabatch status {handle.batch_id} --wait`", highlight=False)
                return EXIT_OK
            return await _follow(handle)

    _run(go)


@app.command()
def status(
    batch_id: Annotated[str, typer.Argument(help="The batch id given at submit.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the batch until it ends.")] = False,
) -> None:
    """Show a batch's progress: status, requests by outcome, provider batches, cost.

    Exit code 3 if there is no such batch. With --wait, follows it like `submit --wait`.

    Example: durabatch status b1 --json
    """

    async def go() -> int:
        from durabatch.client import BatchNotFound

        async with await _client() as client:
            handle = client.get(batch_id)
            try:
                st = await handle.status()
            except BatchNotFound as exc:
                raise _fail(str(exc), EXIT_NOT_FOUND) from None
            if wait:
                return await _follow(handle)
            if as_json:
                sys.stdout.write(st.model_dump_json(indent=2) + "\n")
            else:
                out.print(status_table(st))
            return EXIT_OK

    _run(go)


@app.command(name="list")
def list_batches(
    status: Annotated[
        str | None, typer.Option(help="Only batches in this status (e.g. in_progress, completed).")
    ] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider's batches.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per line.")] = False,
) -> None:
    """List batches, newest first, from Temporal visibility (the Durabatch* search attributes).

    Visibility is eventually consistent: a batch started a second ago may not be listed yet.

    Example: durabatch list --status completed --provider openai
    """

    async def go() -> int:
        async with await _client() as client:
            rows = await client.list(status=status, provider=provider, limit=limit)
        if as_json:
            for r in rows:
                line = {**r.__dict__, "start_time": r.start_time.isoformat() if r.start_time else None}
                sys.stdout.write(json.dumps(line) + "\n")
            return EXIT_OK
        table = Table("batch", "status", "provider", "model", "requests", "workflow", "started")
        for r in rows:
            table.add_row(
                r.batch_id,
                r.status,
                r.provider,
                r.model,
                str(r.requests),
                r.workflow_status,
                str(r.start_time)[:19],
            )
        out.print(table)
        return EXIT_OK

    _run(go)


@app.command()
def cancel(
    batch_id: Annotated[str, typer.Argument(help="The batch id given at submit.")],
    reason: Annotated[str | None, typer.Option(help="Why; recorded on the batch.")] = None,
) -> None:
    """Cancel a batch (at the provider too); results that already exist are kept.

    Returns once the request is recorded; the batch then ends as cancelled. Exit code 3 if there
    is no such batch, 1 if it has already ended.

    Example: durabatch cancel b1 --reason "wrong prompt"
    """

    async def go() -> int:
        from durabatch.client import BatchEnded, BatchNotFound, is_terminal

        async with await _client() as client:
            handle = client.get(batch_id)
            try:
                # A batch whose outcome is final may still have an open workflow (waiting out its
                # handler grace); a cancel signal would be accepted and do nothing.
                st = await handle.status()
                if is_terminal(st.status):
                    raise _fail(
                        f"batch {batch_id!r} has already ended ({st.status}); nothing to cancel",
                        EXIT_NOT_COMPLETED,
                    )
                await handle.cancel(reason)
            except BatchNotFound as exc:
                raise _fail(str(exc), EXIT_NOT_FOUND) from None
            except BatchEnded as exc:
                raise _fail(str(exc), EXIT_NOT_COMPLETED) from None
        out.print(f"cancel requested for batch {batch_id}", highlight=False)
        return EXIT_OK

    _run(go)


@app.command()
def redispatch(
    batch_id: Annotated[str, typer.Argument(help="The batch id given at submit.")],
) -> None:
    """Run a finished batch's failed completion handlers again (the redispatch_handlers update).

    A batch with a failed handler stays open for its handler grace (24 h by default) so that this
    works. Exit code 0 if every handler then succeeded, 5 if one failed again, 1 if there is
    nothing to redispatch (no failed handler, still running, or already closed), 3 if no such batch.

    Example: durabatch redispatch b1
    """

    async def go() -> int:
        from temporalio.client import WorkflowUpdateFailedError
        from temporalio.service import RPCError, RPCStatusCode

        from durabatch.client import BatchNotFound
        from durabatch.models import RedispatchResult

        async with await _client() as client:
            handle = client.get(batch_id)
            try:
                raw = await handle.redispatch_handlers()
            except WorkflowUpdateFailedError as exc:
                cause = getattr(exc.cause, "message", None) or str(exc.cause or exc)
                raise _fail(
                    f"batch {batch_id!r}: nothing to redispatch: {cause}", EXIT_NOT_COMPLETED
                ) from None
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                try:
                    await handle.status()
                except BatchNotFound as missing:
                    raise _fail(str(missing), EXIT_NOT_FOUND) from None
                raise _fail(
                    f"batch {batch_id!r} has closed (its handler grace is over); nothing to redispatch",
                    EXIT_NOT_COMPLETED,
                ) from None
        result = raw if isinstance(raw, RedispatchResult) else RedispatchResult.model_validate(raw)
        for h in result.handlers:
            out.print(f"handler {h.index} ({h.type} {h.target}): {handler_line(h)}", highlight=False)
        return EXIT_HANDLER_FAILED if any(h.status == "failed" for h in result.handlers) else EXIT_OK

    _run(go)


@app.command()
def results(
    batch_id: Annotated[str, typer.Argument(help="The batch id given at submit.")],
    format: Annotated[
        str, typer.Option("--format", help="jsonl (the provider's output line shape) or csv.")
    ] = "jsonl",
    out_file: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
    outcome: Annotated[
        str | None, typer.Option(help="Only succeeded, failed, expired or cancelled results.")
    ] = None,
) -> None:
    """Stream a batch's results from PostgreSQL, in input order (needs the database, not Temporal).

    jsonl lines have the provider's own output file shape (OpenAI batch output lines, Anthropic
    results lines, Gemini responses lines), so existing parsers read them unchanged.

    Example: durabatch results b1 --format csv --out results.csv --outcome failed
    """
    if format not in ("jsonl", "csv"):
        raise _fail("--format must be jsonl or csv", EXIT_USAGE)
    if outcome and outcome not in _OUTCOMES:
        raise _fail(f"--outcome must be one of {', '.join(_OUTCOMES)}", EXIT_USAGE)
    settings = _settings()
    url = _database_url(settings)
    assert url is not None

    async def go() -> int:
        from durabatch.results_format import CSV_COLUMNS, csv_row, provider_line
        from durabatch.store import StoreUnavailable, batches, create_pool
        from durabatch.store.results import iter_results

        try:
            pool = await create_pool(url, min_size=1, max_size=2)
        except StoreUnavailable as exc:
            raise _fail(str(exc), EXIT_UNREACHABLE) from None
        try:
            batch = await batches.get_batch(pool, batch_id)
            if batch is None:
                raise _fail(f"no batch {batch_id!r} in the store", EXIT_NOT_FOUND)
            sink = out_file.open("w", newline="", encoding="utf-8") if out_file else sys.stdout
            try:
                writer = csv.writer(sink) if format == "csv" else None
                if writer:
                    writer.writerow(CSV_COLUMNS)
                count = 0
                async for row in iter_results(pool, batch_id, outcome=outcome):
                    if writer:
                        writer.writerow(csv_row(batch["provider"], dict(row)))
                    else:
                        sink.write(provider_line(batch["provider"], dict(row)) + "\n")
                    count += 1
            finally:
                if out_file:
                    sink.close()
                else:
                    sink.flush()
            if out_file:
                err.print(f"wrote {count} results to {out_file}", highlight=False)
            return EXIT_OK
        finally:
            await pool.close()

    _run(go)


@app.command()
def worker() -> None:
    """Run a worker until SIGINT/SIGTERM (migrates the store and registers search attributes first).

    Example: DURABATCH_TEMPORAL_ADDRESS=temporal:7233 durabatch worker
    """
    from durabatch.service import run_worker
    from durabatch.store import StoreError
    from durabatch.telemetry.logs import configure_logging
    from durabatch.temporal import SearchAttributesMissing

    settings = _settings()
    configure_logging(settings.log_level)
    try:
        asyncio.run(run_worker(settings))
    except KeyboardInterrupt:
        pass
    except SearchAttributesMissing as exc:
        raise _fail(f"worker could not start: {exc}", EXIT_USAGE) from None
    except (OSError, StoreError) as exc:
        raise _fail(f"worker could not start: {exc}", EXIT_UNREACHABLE) from None
    except RuntimeError as exc:
        # The Temporal SDK reports an unreachable server as RuntimeError("Failed client connect: ...").
        if "client connect" not in str(exc):
            raise
        raise _unreachable_temporal(settings, exc) from None


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
) -> None:
    """Run the provider emulator (OpenAI, Anthropic and Gemini batch APIs on one port).

    Example: durabatch emulator --port 8089 --api-key test-key
    """
    from durabatch.emulator import serve_forever

    serve_forever(
        host=host,
        port=port,
        api_keys=api_key or ["test-key"],
        validating_seconds=validating_seconds,
        ms_per_request=ms_per_request,
        finalizing_seconds=finalizing_seconds,
        expire_after_seconds=expire_after_seconds,
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
            raise _fail(str(exc), EXIT_USAGE) from None
        except Exception as exc:
            # Whatever did start (the embedded PostgreSQL, the emulator) must not outlive us.
            await stack.stop()
            raise _fail(f"the dev stack did not start: {exc}", EXIT_NOT_COMPLETED) from None
        out.print("[bold green]durabatch dev stack is up[/]")
        out.print(stack.describe(), highlight=False)
        out.print("\nPoint the CLI or a worker at it from another shell:", highlight=False)
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


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations to DURABATCH_DATABASE_URL (or the embedded database).

    Example: DURABATCH_DATABASE_URL=postgresql://u@db/durabatch durabatch db migrate
    """
    from durabatch.store import StoreUnavailable, create_pool, migrate

    settings = _settings()
    url = _database_url(settings)
    assert url is not None

    async def go() -> int:
        try:
            pool = await create_pool(url, min_size=1, max_size=1)
        except StoreUnavailable as exc:
            raise _fail(str(exc), EXIT_UNREACHABLE) from None
        try:
            async with pool.acquire() as conn:
                applied = await migrate(conn)
        finally:
            await pool.close()
        out.print(f"applied: {', '.join(applied)}" if applied else "database is up to date", highlight=False)
        return EXIT_OK

    _run(go)


def main() -> None:
    """Entry point of the `durabatch` script.

    Exits with `os._exit` once the command has finished and flushed its output: the Temporal
    client's Rust threads can crash CPython's finalization of a short-lived process (SIGSEGV or
    SIGABRT after the command succeeded; temporalio/sdk-python#300), which would turn a correct
    exit code into -11. Everything the commands own (pools, servers, the worker) is closed by then.
    """
    code: int
    try:
        app()
        code = EXIT_OK
    except SystemExit as exc:
        code = (
            exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_NOT_COMPLETED)
        )
        if isinstance(exc.code, str):
            err.print(exc.code, highlight=False)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
