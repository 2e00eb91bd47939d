"""`durabatch submit --dry-run`: what a file would become as a batch, sending nothing.

The file goes through the same validator as a real submit (durabatch/requests_file.py), so a file
the dry run accepts is one submit accepts, and its estimate is the one the cost limit judges.
Needs neither Temporal nor PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from durabatch.budget import cost_refusal
from durabatch.estimate import UNCAPPED_OUTPUT_TOKENS, CostRange
from durabatch.providers.prices import price_of
from durabatch.requests_file import RequestsValidator, iter_lines

__all__ = ["DryRun", "dry_run"]

_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class DryRun:
    provider: str
    model: str | None
    requests: int
    shards: int
    byte_size: int
    input_tokens: int
    max_output_tokens: int
    uncapped: int
    cost: CostRange | None
    #: why the batch's `max_cost_usd` would refuse it, if one was given and it would
    refusal: str | None

    def lines(self) -> list[str]:
        """The report, one fact per line, each under 80 columns."""
        out = [
            f"requests        {self.requests:,} in {self.shards} provider batch{'es' if self.shards != 1 else ''}"
            f" ({self.byte_size / 1e6:.1f} MB)",
            f"model           {self.model or '-'} ({self.provider})",
            f"input tokens    ~{self.input_tokens:,} (estimated from the request size)",
            f"output tokens   at most {self.max_output_tokens:,}",
        ]
        if self.uncapped:
            who = f"{self.uncapped:,} requests set" if self.uncapped != 1 else "1 request sets"
            out.append(f"                ({who} no cap: {UNCAPPED_OUTPUT_TOKENS:,} counted each)")
        if self.cost is None:
            out.append("cost            unknown: no batch price for this model")
        else:
            out.append(
                f"cost            ${_usd(self.cost.low_usd)} to ${_usd(self.cost.high_usd)} at batch prices"
            )
        if self.refusal:
            out.append(f"refused         {self.refusal}")
        out.append("nothing was sent")
        return out


def _usd(value: Decimal) -> str:
    """Enough digits to tell a small batch's cost from zero, cents for a big one."""
    if value < Decimal("0.01"):
        return f"{value:.6f}"
    return f"{value:,.4f}" if value < 100 else f"{value:,.2f}"


def dry_run(
    path: Path,
    *,
    provider: str,
    endpoint: str,
    model: str | None,
    max_cost_usd: float | None = None,
    prices_file: Path | None = None,
) -> DryRun:
    """Validate and estimate `path`; raises what the validator raises (InvalidRequestLine,
    InvalidRequests) and OSError for an unreadable file."""
    validator = RequestsValidator(provider, endpoint, model)
    with path.open("rb") as fh:
        for line_no, raw in iter_lines(iter(lambda: fh.read(_READ_CHUNK), b"")):
            validator.feed(line_no, raw)
    shards = validator.finish(str(path))
    estimate = validator.estimate
    cost = estimate.cost(price_of(provider, validator.model, prices_file))
    refusal = None
    if max_cost_usd is not None:
        refusal = cost_refusal(max_cost_usd, float(cost.high_usd) if cost else None, validator.model)
    return DryRun(
        provider=provider,
        model=validator.model,
        requests=validator.count,
        shards=len(shards),
        byte_size=validator.total_bytes,
        input_tokens=estimate.input_tokens,
        max_output_tokens=estimate.max_output_tokens,
        uncapped=estimate.uncapped,
        cost=cost,
        refusal=refusal,
    )
