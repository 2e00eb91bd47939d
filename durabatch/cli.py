"""The `durabatch` command line.

Exit codes (scripts rely on them):
    0  success (with --wait: the batch completed)
    1  the batch ended but not completed (failed, expired, cancelled), or an unexpected error
    2  bad usage or bad input (a file that does not exist, a bad setting)
    3  no such batch
    4  the stack is not reachable (Temporal or PostgreSQL)
    130 interrupted while waiting (the batch keeps running)
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from durabatch.settings import SettingsError, load_settings

__all__ = ["app", "main"]

T = TypeVar("T")

EXIT_OK, EXIT_NOT_COMPLETED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_UNREACHABLE, EXIT_INTERRUPTED = (
    0,
    1,
    2,
    3,
    4,
    130,
)

app = typer.Typer(
    name="durabatch",
    help="Run LLM provider batch jobs durably on Temporal.\n\nExample: durabatch submit reqs.jsonl --provider openai --endpoint /v1/chat/completions --wait",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _settings() -> Any:
    try:
        return load_settings()
    except SettingsError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None


def _run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    async def wrapped() -> T:
        return await coro_fn()

    return asyncio.run(wrapped())


async def _client() -> Any:
    from durabatch.client import BatchClient

    settings = _settings()
    try:
        return await BatchClient.connect(settings)
    except Exception as exc:
        raise _fail(
            f"cannot reach Temporal at {settings.temporal_address} ({type(exc).__name__}). "
            "Is the stack running? Start it with `durabatch dev`, or set DURABATCH_TEMPORAL_ADDRESS.",
            EXIT_UNREACHABLE,
        ) from None


def _progress_printer() -> tuple[Any, Callable[[Any], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=out,
        transient=False,
    )
    task = progress.add_task("requests", total=None, detail="")

    def update(status: Any) -> None:
        c = status.counts
        done = c.succeeded + c.failed + c.expired + c.cancelled
        providers = ", ".join(s.provider_status or s.state for s in status.shards) or "-"
        progress.update(
            task,
            total=c.total or None,
            completed=done,
            detail=f"{status.status} · ok {c.succeeded} · failed {c.failed} · provider {providers}",
        )

    return progress, update


def _summary_table(summary: Any) -> Table:
    table = Table(title=f"batch {summary.batch_id}", show_header=False)
    c = summary.counts
    rows = [
        ("status", summary.status),
        ("provider / model", f"{summary.provider} / {summary.model or '-'}"),
        ("requests", str(c.total)),
        ("succeeded", str(c.succeeded)),
        ("failed", str(c.failed)),
        ("expired", str(c.expired)),
        ("cancelled", str(c.cancelled)),
        ("tokens in / out", f"{summary.input_tokens} / {summary.output_tokens}"),
        ("cost (USD, batch prices)", "unknown" if summary.cost_usd is None else f"{summary.cost_usd:.6f}"),
        ("provider batches", ", ".join(summary.provider_batch_ids) or "-"),
    ]
    if summary.failure_reason:
        rows.append(("failure", summary.failure_reason))
    for h in summary.handlers:
        rows.append((f"handler {h.index} ({h.type})", f"{h.status} {h.error or ''}".strip()))
    for k, v in rows:
        table.add_row(k, v)
    return table


async def _wait(handle: Any, settings: Any) -> int:
    progress, update = _progress_printer()
    try:
        with progress:
            summary = await handle.wait(progress=update, interval=1.0)
    except (KeyboardInterrupt, asyncio.CancelledError):
        err.print(
            f"detached: batch {handle.batch_id} keeps running. Reattach with "
            f"`durabatch status {handle.batch_id} --wait`, or cancel it with `durabatch cancel {handle.batch_id}`."
        )
        return EXIT_INTERRUPTED
    out.print(_summary_table(summary))
    return EXIT_OK if summary.status == "completed" else EXIT_NOT_COMPLETED


@app.command()
def submit(
    file: Annotated[
        Path, typer.Argument(help="JSONL file of requests (OpenAI, Anthropic or short form lines).")
    ],
    provider: Annotated[str, typer.Option(help="openai, anthropic or gemini.")],
    endpoint: Annotated[str, typer.Option(help="e.g. /v1/chat/completions, /v1/messages, generateContent.")],
    model: Annotated[str | None, typer.Option(help="Model for lines that name none.")] = None,
    batch_id: Annotated[str | None, typer.Option(help="Your id for the batch (default: random).")] = None,
    webhook: Annotated[list[str] | None, typer.Option(help="URL to POST the summary to when done.")] = None,
    webhook_secret_env: Annotated[
        str | None, typer.Option(help="Worker env var holding the webhook signing secret.")
    ] = None,
    poll: Annotated[str | None, typer.Option(help="Poll schedule in seconds, e.g. 30,60,300.")] = None,
    max_age: Annotated[float | None, typer.Option(help="Seconds before the batch is expired.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Show live progress until the batch ends.")] = False,
) -> None:
    """Start a batch from a JSONL file.

    Example: durabatch submit reqs.jsonl --provider openai --endpoint /v1/chat/completions --model gpt-4o-mini --wait
    """
    from durabatch.models import BatchInput

    if not file.is_file():
        raise _fail(f"{file}: no such file", EXIT_USAGE)
    if file.stat().st_size == 0:
        raise _fail(f"{file}: the file is empty", EXIT_USAGE)
    schedule = [float(x) for x in poll.split(",")] if poll else None
    handlers = [{"type": "webhook", "url": u, "secret_env": webhook_secret_env} for u in webhook or []]
    inp = BatchInput(
        batch_id=batch_id or uuid.uuid4().hex[:12],
        provider=provider,
        endpoint=endpoint,
        model=model,
        requests_uri=str(file.resolve()),
        poll_schedule_seconds=schedule,
        max_age_seconds=max_age,
        handlers=handlers,
    )

    async def go() -> int:
        from temporalio.exceptions import WorkflowAlreadyStartedError

        client = await _client()
        try:
            handle = await client.start(inp)
        except WorkflowAlreadyStartedError:
            raise _fail(f"batch {inp.batch_id} already exists", EXIT_USAGE) from None
        out.print(f"started batch [bold]{handle.batch_id}[/] (workflow {handle.workflow_id})")
        if not wait:
            return EXIT_OK
        try:
            return await _wait(handle, client.settings)
        finally:
            await client.close()

    raise typer.Exit(_run(go))


@app.command()
def status(
    batch_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the batch until it ends.")] = False,
) -> None:
    """Show a batch's progress.

    Example: durabatch status b1 --json
    """

    async def go() -> int:
        from durabatch.client import BatchNotFound

        client = await _client()
        handle = client.get(batch_id)
        try:
            st = await handle.status()
        except BatchNotFound as exc:
            raise _fail(str(exc), EXIT_NOT_FOUND) from None
        if wait:
            return await _wait(handle, client.settings)
        if as_json:
            out.print_json(st.model_dump_json())
        else:
            c = st.counts
            table = Table(title=f"batch {batch_id}", show_header=False)
            for k, v in [
                ("status", st.status),
                ("provider / model", f"{st.provider} / {st.model or '-'}"),
                (
                    "requests",
                    f"{c.total}: {c.succeeded} ok, {c.failed} failed, {c.expired} expired, "
                    f"{c.cancelled} cancelled, {c.pending} pending",
                ),
                (
                    "provider batches",
                    ", ".join(
                        f"{s.provider_batch_id} ({s.provider_status})"
                        for s in st.shards
                        if s.provider_batch_id
                    )
                    or "-",
                ),
                ("next poll", str(st.next_poll_at or "-")),
                ("cost (USD)", "-" if st.cost_usd is None else f"{st.cost_usd:.6f}"),
            ]:
                table.add_row(k, v)
            if st.failure_reason:
                table.add_row("failure", st.failure_reason)
            out.print(table)
        return EXIT_OK

    raise typer.Exit(_run(go))


@app.command(name="list")
def list_batches(
    status: Annotated[str | None, typer.Option(help="Only batches in this status.")] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider's batches.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List batches from Temporal visibility (search attributes).

    Example: durabatch list --status completed --provider openai
    """

    async def go() -> int:
        client = await _client()
        rows = await client.list(status=status, provider=provider, limit=limit)
        if as_json:
            for r in rows:
                out.print(json.dumps({**r.__dict__, "start_time": str(r.start_time)}), highlight=False)
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

    raise typer.Exit(_run(go))


@app.command()
def cancel(
    batch_id: str, reason: Annotated[str | None, typer.Option(help="Why; recorded on the batch.")] = None
) -> None:
    """Cancel a batch (at the provider too); results that already exist are kept.

    Example: durabatch cancel b1 --reason "wrong prompt"
    """

    async def go() -> int:
        from durabatch.client import BatchNotFound

        client = await _client()
        try:
            await client.get(batch_id).cancel(reason)
        except BatchNotFound as exc:
            raise _fail(str(exc), EXIT_NOT_FOUND) from None
        out.print(f"cancel requested for batch {batch_id}")
        return EXIT_OK

    raise typer.Exit(_run(go))


@app.command()
def results(
    batch_id: str,
    format: Annotated[
        str, typer.Option("--format", help="jsonl (provider's output shape) or csv.")
    ] = "jsonl",
    out_file: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
    outcome: Annotated[
        str | None, typer.Option(help="Only succeeded, failed, expired or cancelled results.")
    ] = None,
) -> None:
    """Stream a batch's results from PostgreSQL.

    Example: durabatch results b1 --format csv --out results.csv --outcome failed
    """
    if format not in ("jsonl", "csv"):
        raise _fail("--format must be jsonl or csv", EXIT_USAGE)
    if outcome and outcome not in ("succeeded", "failed", "expired", "cancelled"):
        raise _fail("--outcome must be succeeded, failed, expired or cancelled", EXIT_USAGE)

    async def go() -> int:
        from durabatch.results_format import CSV_COLUMNS, csv_row, provider_line
        from durabatch.store import batches, create_pool
        from durabatch.store.results import iter_results
        from worker import database_url

        settings = _settings()
        try:
            pool = await create_pool(database_url(settings), min_size=1, max_size=2)
        except Exception as exc:
            raise _fail(f"cannot reach PostgreSQL: {exc}", EXIT_UNREACHABLE) from None
        try:
            batch = await batches.get_batch(pool, batch_id)
            if batch is None:
                raise _fail(f"no batch {batch_id!r} in the store", EXIT_NOT_FOUND)
            sink = out_file.open("w", newline="") if out_file else sys.stdout
            try:
                writer = csv.writer(sink) if format == "csv" else None
                if writer:
                    writer.writerow(CSV_COLUMNS)
                count = 0
                async for row in iter_results(pool, batch_id, outcome=outcome):
                    if writer:
                        writer.writerow(csv_row(dict(row)))
                    else:
                        sink.write(
                            json.dumps(provider_line(batch["provider"], dict(row)), separators=(",", ":"))
                            + "\n"
                        )
                    count += 1
            finally:
                if out_file:
                    sink.close()
            if out_file:
                err.print(f"wrote {count} results to {out_file}")
            return EXIT_OK
        finally:
            await pool.close()

    raise typer.Exit(_run(go))


@app.command()
def worker() -> None:
    """Run a worker until SIGINT/SIGTERM (migrates the store and registers search attributes first).

    Example: DURABATCH_TEMPORAL_ADDRESS=temporal:7233 durabatch worker
    """
    from durabatch.telemetry import configure_logging
    from worker import run_worker

    settings = _settings()
    configure_logging(settings.log_level)
    try:
        asyncio.run(run_worker(settings))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise _fail(f"worker could not start: {exc}", EXIT_UNREACHABLE) from None


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

    Ctrl-C stops everything; running it again reuses the data in --data-dir.

    Example: durabatch dev --data-dir .durabatch
    """
    from durabatch.devstack import DevStack, DevStackConfig, PortInUse
    from durabatch.telemetry import configure_logging

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
        except PortInUse as exc:
            await stack.stop()
            raise _fail(str(exc), EXIT_USAGE) from None
        out.print("[bold green]durabatch dev stack is up[/]")
        out.print(stack.describe(), highlight=False)
        out.print("Press Ctrl-C to stop.")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal as _signal

        for sig in (_signal.SIGINT, _signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            out.print("stopping...")
            await stack.stop()
            out.print("stopped.")

    asyncio.run(go())


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations to DURABATCH_DATABASE_URL (or the embedded database).

    Example: DURABATCH_DATABASE_URL=postgresql://u@db/durabatch durabatch db migrate
    """
    from durabatch.store import StoreUnavailable, create_pool, migrate
    from worker import database_url

    settings = _settings()

    async def go() -> list[str]:
        pool = await create_pool(database_url(settings))
        try:
            async with pool.acquire() as conn:
                return await migrate(conn)
        finally:
            await pool.close()

    try:
        applied = _run(go)
    except StoreUnavailable as exc:
        raise _fail(str(exc), EXIT_UNREACHABLE) from None
    out.print(f"applied: {', '.join(applied)}" if applied else "database is up to date")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
