"""`durabatch results`: a batch's results streamed from PostgreSQL, in the provider's line shape or CSV."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated

import typer

from durabatch.cli.common import (
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
    run,
)

__all__ = ["results"]


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
    all_rounds: Annotated[
        bool,
        typer.Option(
            "--all-rounds",
            help="Every attempt of a retried request, not only its final result (jsonl: one "
            '{"round", "final", "line"} object per attempt; csv: round and final columns).',
        ),
    ] = False,
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
                found = await open_results(pool, batch_id, outcome, all_rounds=all_rounds)
            except BatchNotFound as exc:
                raise fail(str(exc), EXIT_NOT_FOUND) from None
            sink = out_file.open("w", newline="", encoding="utf-8") if out_file else sys.stdout
            try:
                writer = csv.writer(sink) if format == "csv" else None
                if writer:
                    writer.writerow((*CSV_COLUMNS, "round", "final") if all_rounds else CSV_COLUMNS)
                count = 0
                async for row in found.rows:
                    if writer:
                        cells = csv_row(found.provider, row)
                        writer.writerow((*cells, row["round"], row["final"]) if all_rounds else cells)
                    elif all_rounds:
                        line = provider_line(found.provider, row)
                        sink.write(
                            f'{{"round": {row["round"]}, "final": {str(row["final"]).lower()}, "line": {line}}}\n'
                        )
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
