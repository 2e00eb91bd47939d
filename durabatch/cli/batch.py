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
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Annotated

import typer

from durabatch.cli.common import (
    EXIT_HANDLER_FAILED,
    EXIT_NOT_COMPLETED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    app,
    cli_settings,
    err,
    fail,
    follow,
    open_client,
    out,
    run,
    run_app,
)
from durabatch.cli.console import (
    batches_table,
    handler_line,
    status_table,
    summary_table,
    wait_with_progress,
)
from durabatch.contract import BATCH_ID_RE, BATCH_STATUSES, PROVIDERS

__all__ = ["EXIT_USAGE", "app", "cli_results", "cli_stack", "main", "summary_table", "wait_with_progress"]


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
    webhook_attempts: Annotated[
        int | None, typer.Option(help="Delivery attempts per webhook before it counts as failed (default 5).")
    ] = None,
    poll: Annotated[str | None, typer.Option(help="Poll schedule in seconds, e.g. 30,60,300.")] = None,
    max_age: Annotated[float | None, typer.Option(help="Seconds before the batch is expired.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Show live progress until the batch ends.")] = False,
    max_cost: Annotated[
        float | None, typer.Option(help="Refuse the batch if its estimated cost (USD) is above this.")
    ] = None,
    max_rounds: Annotated[
        int | None, typer.Option(help="Rounds in all, retries of retryable failures included (default 2).")
    ] = None,
    priority: Annotated[int | None, typer.Option(help="1 (first) to 5 (last); default 3.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Fairness key shared by a team's batches.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and estimate the file, print it, send nothing.")
    ] = False,
) -> None:
    """Start a batch from a JSONL file; prints the batch id (exit 0), or with --wait follows it to the end.

    Every line is validated and the file streamed into PostgreSQL before the batch starts: a bad
    line exits 2 naming FILE:LINE and the field, and leaves no batch (the fixed file can be
    submitted with the same --batch-id).

    With --wait the exit code is 0 only if the batch completed (1 if it failed, expired or was
    cancelled; 5 if it completed but a completion handler failed, as soon as every handler has
    run); Ctrl-C stops watching and leaves the batch running (exit 130).

    With --dry-run nothing is sent and neither Temporal nor PostgreSQL is needed: it prints the
    requests, provider batches, estimated input tokens, maximum output tokens and the cost range
    at batch prices (exit 2 if --max-cost would refuse the file).

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
    if dry_run:
        raise typer.Exit(print_dry_run(file, provider, endpoint, model, max_cost))
    handlers = [
        {"type": "webhook", "url": u, "secret_env": webhook_secret_env, "max_attempts": webhook_attempts}
        for u in webhook or []
    ]
    inp = BatchInput(
        batch_id=batch_id or uuid.uuid4().hex[:12],
        provider=provider,
        endpoint=endpoint,
        model=model,
        poll_schedule_seconds=schedule,
        max_age_seconds=max_age,
        handlers=handlers,
        max_cost_usd=max_cost,
        max_rounds=max_rounds,
        priority=priority,
        tenant=tenant,
    )

    async def go() -> int:
        from durabatch.client import BatchAlreadyExists, CostLimitExceeded, InvalidRequestsFile
        from durabatch.contract import InvalidBatchInput

        async with await open_client(require_store=True) as client:
            try:
                # Validated and staged here, before the batch exists: a refused file leaves no batch.
                handle = await client.start(inp, requests_path=file)
            except BatchAlreadyExists as exc:
                raise fail(f"{exc}; batch ids are never reused", EXIT_USAGE) from None
            except (InvalidRequestsFile, InvalidBatchInput, CostLimitExceeded) as exc:
                raise fail(f"{exc} (nothing was started)", EXIT_USAGE) from None
            out.print(f"started batch [bold]{handle.batch_id}[/] (workflow {handle.workflow_id})")
            if not wait:
                out.print(f"follow it with `durabatch status {handle.batch_id} --wait`", highlight=False)
                return EXIT_OK
            return await follow(handle)

    run(go)


def print_dry_run(file: Path, provider: str, endpoint: str, model: str | None, max_cost: float | None) -> int:
    """`submit --dry-run`: the report (durabatch/dry_run.py), exit 0, or 2 if the file or the cost
    limit refuses it."""
    from durabatch.dry_run import dry_run
    from durabatch.requests_file import InvalidRequestLine, InvalidRequests, located

    settings = cli_settings()
    try:
        report = dry_run(
            file,
            provider=provider,
            endpoint=endpoint,
            model=model,
            max_cost_usd=max_cost,
            prices_file=settings.prices_file,
        )
    except (InvalidRequestLine, InvalidRequests) as exc:
        raise fail(f"{located(file.resolve(), exc)} (nothing was sent)", EXIT_USAGE) from None
    for line in report.lines():
        out.print(line, highlight=False, markup=False)
    return EXIT_USAGE if report.refusal else EXIT_OK


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
        str | None, typer.Option(help=f"Only batches in this status: {', '.join(BATCH_STATUSES)}.")
    ] = None,
    provider: Annotated[
        str | None, typer.Option(help=f"Only this provider's batches: {', '.join(PROVIDERS)}.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per line.")] = False,
) -> None:
    """List batches, newest first, from Temporal visibility (the Durabatch* search attributes).

    Visibility is eventually consistent: a batch started a second ago may not be listed yet.

    Example: durabatch list --status completed --provider openai
    """

    if status is not None and status not in BATCH_STATUSES:
        raise fail(f"--status must be one of {', '.join(BATCH_STATUSES)}, got {status!r}", EXIT_USAGE)
    if provider is not None and provider not in PROVIDERS:
        raise fail(f"--provider must be one of {', '.join(PROVIDERS)}, got {provider!r}", EXIT_USAGE)
    if limit < 1:
        raise fail(f"--limit must be at least 1, got {limit}", EXIT_USAGE)

    async def go() -> int:
        async with await open_client() as client:
            rows = await client.list(status=status, provider=provider, limit=limit)
        if as_json:
            for r in rows:
                line = {**r.__dict__, "start_time": r.start_time.isoformat() if r.start_time else None}
                sys.stdout.write(json.dumps(line) + "\n")
            return EXIT_OK
        out.print(batches_table(rows, out.width), soft_wrap=True, highlight=False)
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
                    st = await handle.status()
                except BatchNotFound as missing:
                    raise fail(str(missing), EXIT_NOT_FOUND) from None
                # A closed workflow either ran every handler successfully or outlived its grace.
                why = (
                    "its handler grace is over"
                    if any(h.status == "failed" for h in st.handlers)
                    else "no handler failed"
                )
                raise fail(
                    f"batch {batch_id!r} has closed ({why}); nothing to redispatch", EXIT_NOT_COMPLETED
                ) from None
        result = raw if isinstance(raw, RedispatchResult) else RedispatchResult.model_validate(raw)
        for h in result.handlers:
            out.print(f"handler {h.index} ({h.type} {h.target}): {handler_line(h)}", highlight=False)
        return EXIT_HANDLER_FAILED if any(h.status == "failed" for h in result.handlers) else EXIT_OK

    run(go)


# After the batch commands, so that `--help` lists them first: results, then worker, emulator, dev, db.
from durabatch.cli import results as cli_results  # noqa: E402
from durabatch.cli import stack as cli_stack  # noqa: E402


def main() -> None:
    """Entry point of the `durabatch` script.

    Exits with `os._exit` once the command has finished and flushed its output: the Temporal
    client's Rust threads can crash CPython's finalization of a short-lived process (SIGSEGV or
    SIGABRT after the command succeeded; temporalio/sdk-python#300), which would turn a correct
    exit code into -11. Everything the commands own (pools, servers, the worker) is closed by then.
    """
    code: int
    try:
        code = run_app()
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
