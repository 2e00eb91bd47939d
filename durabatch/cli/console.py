"""Terminal rendering shared by the CLI and `make demo`: a live progress bar and a summary table.

summary = await wait_with_progress(handle)      # raises Detached on Ctrl-C; the batch keeps running
Console().print(summary_table(summary))
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from rich.text import Text

from durabatch.cli.format import human_when, or_dash
from durabatch.client import BatchHandle, BatchRow, is_terminal
from durabatch.models import BatchSummary, HandlerState, StatusQuery

__all__ = [
    "Detached",
    "HandlersFailed",
    "batches_table",
    "handler_line",
    "handlers_failed",
    "progress_label",
    "progress_line",
    "status_table",
    "summary_table",
    "wait_with_progress",
]


class HandlersFailed(Exception):
    """The batch's outcome is final but a completion handler failed: the workflow stays open for
    `redispatch_handlers` (up to its handler grace), and waiting on longer would block for that."""

    def __init__(self, status: StatusQuery) -> None:
        failed = [h for h in status.handlers if h.status == "failed"]
        super().__init__(
            f"batch {status.batch_id} {status.status}, but {len(failed)} handler(s) failed: "
            + "; ".join(f"{h.index} ({h.type} {h.target}): {h.error or 'failed'}" for h in failed)
        )
        self.status = status


def handlers_failed(handlers: list[HandlerState]) -> bool:
    """Every handler has run and at least one failed."""
    return any(h.status == "failed" for h in handlers) and not any(h.status == "pending" for h in handlers)


def handler_line(h: HandlerState) -> str:
    """`failed · dispatched 1 time, up to 5 attempts each · HTTP 500`"""
    parts: list[str] = [h.status]
    if h.attempts:
        each = f", up to {h.max_attempts} attempts each" if h.max_attempts else ""
        parts.append(f"dispatched {h.attempts} time{'s' if h.attempts != 1 else ''}{each}")
    if h.error:
        parts.append(h.error)
    return " · ".join(parts)


class Detached(Exception):
    """The user pressed Ctrl-C while waiting: we stopped watching, the batch keeps running."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(f"detached from batch {batch_id}; it keeps running")
        self.batch_id = batch_id


def progress_line(status: StatusQuery) -> str:
    """`in_progress · provider in_progress · ok 12 · failed 1 · pending 7` (outcomes with a count only)."""
    c = status.counts
    providers = sorted({s.provider_status or s.state for s in status.shards if s.provider_status or s.state})
    providers = providers or ["-"]
    parts = [status.status, f"provider {', '.join(providers)}", f"ok {c.succeeded}", f"failed {c.failed}"]
    parts += [f"{name} {n}" for name, n in (("expired", c.expired), ("cancelled", c.cancelled)) if n]
    if c.pending:
        parts.append(f"pending {c.pending}")
    if status.cancel_requested and status.status not in ("cancelled",):
        parts.append("cancelling")
    return " · ".join(parts)


#: What the progress line needs besides its label: bar (20), counts (up to 15), elapsed (8), gaps (4)
#: and at least 10 for the detail.
_PROGRESS_FIXED = 57


def progress_label(batch_id: str, width: int) -> str:
    """`batch ID`, cut with an ellipsis when the line would leave the counts no room (rich crops
    the widest cells of a too-wide line, and the counts are what the line is for)."""
    label = f"batch {batch_id}"
    room = max(12, width - _PROGRESS_FIXED)
    return label if len(label) <= room else label[: room - 1] + "…"


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

    Returns the workflow's summary once the outcome is final. A failed completion handler raises
    `HandlersFailed` as soon as every handler has run (the workflow itself stays open for
    `redispatch_handlers`). Ctrl-C (SIGINT) raises `Detached` and leaves the batch running.
    Errors of `BatchHandle.wait` (a terminated workflow, an unreachable server) propagate.
    """
    console = console or Console()
    # The counts never give way on a narrow terminal: the detail column takes what is left and is
    # cut with an ellipsis instead.
    progress = Progress(
        TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True)),
        BarColumn(bar_width=20 if console.width < 100 else 30),
        MofNCompleteColumn(table_column=Column(no_wrap=True)),
        TextColumn("{task.fields[detail]}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
        TimeElapsedColumn(table_column=Column(no_wrap=True)),
        console=console,
        transient=False,
        expand=True,
    )
    task: TaskID = progress.add_task(
        progress_label(handle.batch_id, console.width), total=None, detail="starting"
    )

    settled: list[StatusQuery] = []
    handlers_done = asyncio.Event()

    def update(status: StatusQuery) -> None:
        progress.update(
            task, total=status.counts.total or None, completed=_done(status), detail=progress_line(status)
        )
        if is_terminal(status.status) and handlers_failed(status.handlers):
            settled.append(status)
            handlers_done.set()

    detach = asyncio.Event()
    with _sigint_sets(detach), progress:
        waiting = asyncio.ensure_future(handle.wait(progress=update, interval=interval))
        interrupted = asyncio.ensure_future(detach.wait())
        failed_handlers = asyncio.ensure_future(handlers_done.wait())
        try:
            await asyncio.wait({waiting, interrupted, failed_handlers}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            interrupted.cancel()
            failed_handlers.cancel()
            if not waiting.done():
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await waiting
        if settled and not (waiting.done() and not waiting.cancelled() and waiting.exception() is None):
            progress.update(
                task, completed=_done(settled[-1]), detail=f"{settled[-1].status}, handler failed"
            )
            raise HandlersFailed(settled[-1])
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
        rows.append((f"handler {h.index} ({h.type})", handler_line(h)))
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
                f"{s.provider_batch_id} ({s.provider_status or s.state})"
                for s in st.shards
                if s.provider_batch_id
            )
            or "-",
        ),
        ("next poll", human_when(st.next_poll_at) if not is_terminal(st.status) else "-"),
        ("tokens in / out", f"{st.input_tokens} / {st.output_tokens}"),
        ("cost (USD)", "-" if st.cost_usd is None else f"{st.cost_usd:.6f}"),
    ]
    if st.retry_rounds:
        rows.append(("retry rounds", f"{st.retry_rounds} of {(st.max_rounds or 1) - 1}"))
    if st.realtime_requests or st.realtime_rpm:
        rate = f" ({st.realtime_rpm:g} requests/min)" if st.realtime_rpm else ""
        rows.append(("real time", f"{st.realtime_requests} finished{rate}"))
    for s in st.shards:
        if s.state == "waiting_admission":
            rows.append((f"shard {s.shard}", s.admission_reason or "waiting for admission"))
    if st.failure_reason:
        rows.append(("failure", st.failure_reason))
    if st.cancel_reason:
        rows.append(("cancel reason", st.cancel_reason))
    for h in st.handlers:
        rows.append((f"handler {h.index} ({h.type} {or_dash(h.target)})", handler_line(h)))
    for key, value in rows:
        table.add_row(key, value)
    return table


#: `durabatch list` columns, most wanted first: on a narrow terminal the last ones are dropped.
_LIST_COLUMNS = ("batch", "status", "requests", "provider", "model", "started", "workflow")


def batches_table(rows: list[BatchRow], width: int) -> RenderableType:
    """`durabatch list`: the batch id is always whole and on one line (it is what the other
    commands take), so the columns that do not fit in `width` are left out instead. Print it with
    `soft_wrap=True`: an id longer than the terminal itself then comes as plain `id  status` lines
    that the terminal wraps, never cut."""
    cells = [
        {
            "batch": r.batch_id,
            "status": r.status,
            "requests": str(r.requests),
            "provider": r.provider,
            "model": or_dash(r.model),
            "started": str(r.start_time)[:19] if r.start_time else "-",
            "workflow": r.workflow_status,
        }
        for r in rows
    ]
    natural = {c: max([len(c), *(len(row[c]) for row in cells)]) for c in _LIST_COLUMNS}
    shown = list(_LIST_COLUMNS)

    def needed() -> int:  # a rich table with borders spends 3 characters per column, plus 1
        return sum(natural[c] + 3 for c in shown) + 1

    while len(shown) > 2 and needed() > width:
        shown.pop()
    if needed() > width:
        return Text("\n".join(f"{row['batch']}  {row['status']}" for row in cells))
    table = Table(*(Column(c, no_wrap=True) for c in shown))
    for row in cells:
        table.add_row(*(row[c] for c in shown))
    return table
