"""Small text helpers for terminal output: human times, and values never printed as `None`."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["human_when", "or_dash"]


def or_dash(value: object) -> str:
    """`-` for a missing value, so a table never shows `None`."""
    return "-" if value is None or value == "" else str(value)


def human_when(when: datetime | None, now: datetime | None = None) -> str:
    """`in 4 min`, `in 30 s`, `now`, `2 h ago`; `-` for no time. Naive times are taken as UTC."""
    if when is None:
        return "-"
    now = now or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - now).total_seconds()
    ahead = seconds >= 0
    seconds = abs(seconds)
    if seconds < 1:
        return "now"
    if seconds < 90:
        text = f"{seconds:.0f} s"
    elif seconds < 90 * 60:
        text = f"{seconds / 60:.0f} min"
    elif seconds < 36 * 3600:
        text = f"{seconds / 3600:.0f} h"
    else:
        text = f"{seconds / 86400:.0f} days"
    return f"in {text}" if ahead else f"{text} ago"
