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

import contextlib
import csv
import json
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from durabatch.console import (
    handler_line,
    status_table,
    summary_table,
    wait_with_progress,
)
from durabatch.contract import BATCH_ID_RE, PROVIDERS

if TYPE_CHECKING:
    pass

from durabatch.cli_common import (
    EXIT_HANDLER_FAILED,
    EXIT_NOT_COMPLETED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    OUTCOMES,
    app,
    cli_settings,
    database_url,
    err,
    fail,
    follow,
    open_client,
    out,
    run,
)

__all__ = ["EXIT_USAGE", "app", "cli_stack", "main", "summary_table", "wait_with_progress"]


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
        raise fail(f"--provider must be one of {', '.join(PROVIDERS)}, got {provider!r}", EXIT_USAGE)
    if batch_id is not None and not BATCH_ID_RE.match(batch_id):
        raise fail("--batch-id must be 1-128 characters of letters, digits, '_', '-', '.', ':'", EXIT_USAGE)
    try:
        schedule = [float(x) for x in poll.split(",")] if poll else None
    except ValueError:
        raise fail(f"--poll must be seconds separated by commas, got {poll!r}", EXIT_USAGE) from None
    if schedule is not None and any(x <= 0 for x in schedule):
        raise fail("--poll delays must be positive", EXIT_USAGE)
    for url in webhook or []:
        if not url.startswith(("http://", "https://")):
            raise fail(f"--webhook must be an http(s) URL, got {url!r}", EXIT_USAGE)
    if not file.is_file():
        raise fail(f"{file.resolve()}: no such file", EXIT_USAGE)
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

        async with await open_client(require_store=True) as client:
            try:
                # Validated and staged here, before the batch exists: a refused file leaves no batch.
                handle = await client.start(inp, requests_path=file)
            except BatchAlreadyExists as exc:
                raise fail(f"{exc}; batch ids are never reused", EXIT_USAGE) from None
            except (InvalidRequestsFile, InvalidBatchInput) as exc:
                raise fail(f"{exc} (nothing was started)", EXIT_USAGE) from None
            out.print(f"started batch [bold]{handle.batch_id}[/] (workflow {handle.workflow_id})")
            if not wait:
                out.print(f"follow it with `durabatch status {handle.batch_id} --wait`", highlight=False)
                return EXIT_OK
            return await follow(handle)

    run(go)


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

        async with await open_client() as client:
            handle = client.get(batch_id)
            try:
                st = await handle.status()
            except BatchNotFound as exc:
                raise fail(str(exc), EXIT_NOT_FOUND) from None
            if wait:
                return await follow(handle)
            if as_json:
                sys.stdout.write(st.model_dump_json(indent=2) + "\n")
            else:
                out.print(status_table(st))
            return EXIT_OK

    run(go)


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
        async with await open_client() as client:
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

    run(go)


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

        async with await open_client() as client:
            handle = client.get(batch_id)
            try:
                # A batch whose outcome is final may still have an open workflow (waiting out its
                # handler grace); a cancel signal would be accepted and do nothing.
                st = await handle.status()
                if is_terminal(st.status):
                    raise fail(
                        f"batch {batch_id!r} has already ended ({st.status}); nothing to cancel",
                        EXIT_NOT_COMPLETED,
                    )
                await handle.cancel(reason)
            except BatchNotFound as exc:
                raise fail(str(exc), EXIT_NOT_FOUND) from None
            except BatchEnded as exc:
                raise fail(str(exc), EXIT_NOT_COMPLETED) from None
        out.print(f"cancel requested for batch {batch_id}", highlight=False)
        return EXIT_OK

    run(go)


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

        async with await open_client() as client:
            handle = client.get(batch_id)
            try:
                raw = await handle.redispatch_handlers()
            except WorkflowUpdateFailedError as exc:
                cause = getattr(exc.cause, "message", None) or str(exc.cause or exc)
                raise fail(
                    f"batch {batch_id!r}: nothing to redispatch: {cause}", EXIT_NOT_COMPLETED
                ) from None
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                try:
                    await handle.status()
                except BatchNotFound as missing:
                    raise fail(str(missing), EXIT_NOT_FOUND) from None
                raise fail(
                    f"batch {batch_id!r} has closed (its handler grace is over); nothing to redispatch",
                    EXIT_NOT_COMPLETED,
                ) from None
        result = raw if isinstance(raw, RedispatchResult) else RedispatchResult.model_validate(raw)
        for h in result.handlers:
            out.print(f"handler {h.index} ({h.type} {h.target}): {handler_line(h)}", highlight=False)
        return EXIT_HANDLER_FAILED if any(h.status == "failed" for h in result.handlers) else EXIT_OK

    run(go)


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
        raise fail("--format must be jsonl or csv", EXIT_USAGE)
    if outcome and outcome not in OUTCOMES:
        raise fail(f"--outcome must be one of {', '.join(OUTCOMES)}", EXIT_USAGE)
    settings = cli_settings()
    url = database_url(settings)
    assert url is not None

    async def go() -> int:
        from durabatch.client_errors import BatchNotFound
        from durabatch.results_format import CSV_COLUMNS, csv_row, provider_line
        from durabatch.results_reader import open_results
        from durabatch.store import StoreUnavailable, create_pool

        try:
            pool = await create_pool(url, min_size=1, max_size=2)
        except StoreUnavailable as exc:
            raise fail(str(exc), EXIT_UNREACHABLE) from None
        try:
            try:
                found = await open_results(pool, batch_id, outcome)
            except BatchNotFound as exc:
                raise fail(str(exc), EXIT_NOT_FOUND) from None
            sink = out_file.open("w", newline="", encoding="utf-8") if out_file else sys.stdout
            try:
                writer = csv.writer(sink) if format == "csv" else None
                if writer:
                    writer.writerow(CSV_COLUMNS)
                count = 0
                async for row in found.rows:
                    if writer:
                        writer.writerow(csv_row(found.provider, row))
                    else:
                        sink.write(provider_line(found.provider, row) + "\n")
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

    run(go)


# After the batch commands, so that `--help` lists them first.
from durabatch import cli_stack  # noqa: E402  (registers worker, emulator, dev and db on `app`)


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
