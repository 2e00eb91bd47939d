"""What every `durabatch` command shares: the Typer app, the consoles, the exit codes, settings,
the client and the database URL, and following a batch to its end."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console
from typer.exceptions import TyperException

from durabatch.cli.console import (
    Detached,
    HandlersFailed,
    status_table,
    summary_table,
    wait_with_progress,
)
from durabatch.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from durabatch.client import BatchClient, BatchHandle

__all__ = [
    "EXIT_HANDLER_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_COMPLETED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "OUTCOMES",
    "app",
    "cli_settings",
    "database_url",
    "db_app",
    "err",
    "fail",
    "follow",
    "handler_hint",
    "open_client",
    "out",
    "run",
    "run_app",
    "unreachable_temporal",
]

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
OUTCOMES = ("succeeded", "failed", "expired", "cancelled")

# Plain help (rich_markup_mode=None): flags show as flags, not as `<bool>` options, and nothing is
# drawn in boxes. Usage errors are printed by `exit_code_of` as one `error:` line.
app = typer.Typer(
    name="durabatch",
    help="Run LLM provider batch jobs durably on Temporal.\n\n"
    "Example: durabatch submit reqs.jsonl --provider openai --endpoint /v1/chat/completions --wait",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
db_app = typer.Typer(
    help="Database commands.\n\nExample: durabatch db migrate", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)


def fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def run_app(args: list[str] | None = None) -> int:
    """Run the Typer app and return its exit code; a usage error (unknown option, missing argument,
    bad value) is printed as one `error: ... (see `durabatch CMD --help`)` line and exits 2."""
    from typer._click.exceptions import NoArgsIsHelpError  # typer's own copy of click

    try:
        # standalone_mode=False: click raises its errors here instead of printing them its way.
        result = app(args=args, standalone_mode=False)
    except NoArgsIsHelpError as exc:
        err.print(exc.format_message(), highlight=False, markup=False)
        return EXIT_USAGE
    except TyperException as exc:
        message = " ".join(exc.format_message().split()).removesuffix(".")
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        err.print(f"error: {message}{hint}", highlight=False, markup=False, soft_wrap=True)
        return int(getattr(exc, "exit_code", EXIT_USAGE))
    except typer.Abort:  # end of input or Ctrl-C at a prompt
        return EXIT_INTERRUPTED
    return result if isinstance(result, int) else EXIT_OK


def cli_settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise fail(str(exc), EXIT_USAGE) from None


def unreachable_temporal(settings: Settings, exc: BaseException) -> typer.Exit:
    return fail(
        f"cannot reach Temporal at {settings.temporal_address} ({type(exc).__name__}). "
        "Is the stack running? Start it with `durabatch dev`, or set DURABATCH_TEMPORAL_ADDRESS.",
        EXIT_UNREACHABLE,
    )


def run(coro_fn: Callable[[], Awaitable[int]]) -> None:
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
            raise unreachable_temporal(cli_settings(), exc) from None
        raise fail(f"Temporal refused the call: {exc.message}", EXIT_NOT_COMPLETED) from None
    raise typer.Exit(code)


async def open_client(*, require_store: bool = False) -> BatchClient:
    from durabatch.client import BatchClient, StoreNotConfigured

    settings = cli_settings()
    try:
        return await BatchClient.connect(
            settings, database_url(settings, required=require_store), require_store=require_store
        )
    except StoreNotConfigured as exc:
        raise fail(str(exc), EXIT_UNREACHABLE) from None
    except Exception as exc:
        raise unreachable_temporal(settings, exc) from None


def database_url(settings: Settings, *, required: bool = True) -> str | None:
    """DURABATCH_DATABASE_URL, else the embedded server of a running `durabatch dev` in the data dir
    (found as `BatchClient` finds it). The CLI never starts an embedded server itself: with none
    running it fails with exit code 4, or gives None when the command can do without the store."""
    from durabatch.dblocate import DatabaseNotConfigured, find_database_url

    try:
        return find_database_url(settings)
    except DatabaseNotConfigured as exc:
        if not required:
            return None
        raise fail(str(exc), EXIT_UNREACHABLE) from None


async def follow(handle: BatchHandle) -> int:
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
        raise fail(str(exc), EXIT_NOT_FOUND) from None
    except BatchWorkflowFailed as exc:
        raise fail(str(exc), EXIT_NOT_COMPLETED) from None
    except HandlersFailed as exc:
        # The outcome is final; the workflow only stays open so the handler can be redispatched.
        out.print(status_table(exc.status))
        handler_hint(handle.batch_id)
        return EXIT_NOT_COMPLETED if exc.status.status != "completed" else EXIT_HANDLER_FAILED
    out.print(summary_table(summary))
    if summary.status != "completed":
        return EXIT_NOT_COMPLETED
    if any(h.status == "failed" for h in summary.handlers):
        handler_hint(handle.batch_id)
        return EXIT_HANDLER_FAILED
    return EXIT_OK


def handler_hint(batch_id: str) -> None:
    err.print(
        f"error: batch {batch_id}: a completion handler failed; "
        f"rerun the failed ones with `durabatch redispatch {batch_id}`",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
