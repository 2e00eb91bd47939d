"""Terminal rendering shared by the CLI and `make demo`: a live progress bar and a summary table.

summary = await wait_with_progress(handle)      # raises Detached on Ctrl-C; the batch keeps running
Console().print(summary_table(summary))
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from durabatch.client import BatchHandle
from durabatch.models import BatchSummary, StatusQuery

__all__ = ["Detached", "progress_line", "status_table", "summary_table", "wait_with_progress"]


class Detached(Exception):
    """The user pressed Ctrl-C while waiting: we stopped watching, the batch keeps running."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(f"detached from batch {batch_id}; it keeps running")
        self.batch_id = batch_id


def progress_line(status: StatusQuery) -> str:
    """`in_progress · provider in_progress · ok 12 · failed 1 · pending 7` (outcomes with a count only)."""
    c = status.counts
    providers = sorted({s.provider_status or s.state for s in status.shards}) or ["-"]
    parts = [status.status, f"provider {', '.join(providers)}", f"ok {c.succeeded}", f"failed {c.failed}"]
    parts += [f"{name} {n}" for name, n in (("expired", c.expired), ("cancelled", c.cancelled)) if n]
    if c.pending:
        parts.append(f"pending {c.pending}")
    if status.cancel_requested and status.status not in ("cancelled",):
        parts.append("cancelling")
    return " · ".join(parts)


def _done(status: StatusQuery) -> int:
    c = status.counts
    return c.succeeded + c.failed + c.expired + c.cancelled


@contextlib.contextmanager
def _sigint_sets(event: asyncio.Event) -> Iterator[None]:
    """While inside, SIGINT sets `event` instead of raising KeyboardInterrupt."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, event.set)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def wait_with_progress(
    handle: BatchHandle, console: Console | None = None, *, interval: float = 1.0
) -> BatchSummary:
    """Follow a batch with a live progress bar (requests done by outcome, provider status) until it ends.

    Returns the workflow's summary. Ctrl-C (SIGINT) raises `Detached` and leaves the batch running.
    Errors of `BatchHandle.wait` (a terminated workflow, an unreachable server) propagate.
    """
    console = console or Console()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    task: TaskID = progress.add_task(f"batch {handle.batch_id}", total=None, detail="starting")

    def update(status: StatusQuery) -> None:
        progress.update(
            task, total=status.counts.total or None, completed=_done(status), detail=progress_line(status)
        )

    detach = asyncio.Event()
    with _sigint_sets(detach), progress:
        waiting = asyncio.ensure_future(handle.wait(progress=update, interval=interval))
        interrupted = asyncio.ensure_future(detach.wait())
        try:
            await asyncio.wait({waiting, interrupted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            interrupted.cancel()
            if not waiting.done():
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await waiting
        if not waiting.done() or waiting.cancelled():
            raise Detached(handle.batch_id)
        summary = waiting.result()
        progress.update(
            task,
            total=summary.counts.total or None,
            completed=summary.counts.total - summary.counts.pending,
            detail=f"{summary.status}",
        )
    return summary


def summary_table(summary: BatchSummary) -> Table:
    """The end-of-batch table: status, outcomes, tokens, cost, provider batches, handlers."""
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
    for key, value in rows:
        table.add_row(key, value)
    return table


def status_table(st: StatusQuery) -> Table:
    """`durabatch status`: where a batch stands now."""
    c = st.counts
    table = Table(title=f"batch {st.batch_id}", show_header=False)
    rows = [
        (
            "status",
            st.status + (" (cancel requested)" if st.cancel_requested and st.status != "cancelled" else ""),
        ),
        ("provider / model", f"{st.provider} / {st.model or '-'}"),
        (
            "requests",
            f"{c.total}: {c.succeeded} ok, {c.failed} failed, {c.expired} expired, "
            f"{c.cancelled} cancelled, {c.pending} pending",
        ),
        (
            "provider batches",
            ", ".join(
                f"{s.provider_batch_id} ({s.provider_status})" for s in st.shards if s.provider_batch_id
            )
            or "-",
        ),
        ("next poll", str(st.next_poll_at or "-")),
        ("tokens in / out", f"{st.input_tokens} / {st.output_tokens}"),
        ("cost (USD)", "-" if st.cost_usd is None else f"{st.cost_usd:.6f}"),
    ]
    if st.failure_reason:
        rows.append(("failure", st.failure_reason))
    if st.cancel_reason:
        rows.append(("cancel reason", st.cancel_reason))
    for key, value in rows:
        table.add_row(key, value)
    return table
