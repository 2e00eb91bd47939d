"""The one request-line validator: the CLI, `BatchClient` and the staging activity all use it.

`RequestsValidator.feed(line_no, raw)` takes one JSONL line (bytes) or one inline item (already
parsed) and returns a `StagedRequest` ready for COPY, None for a blank line, or raises
`InvalidRequestLine` naming the line number and the field. `finish()` checks what only the whole
file can tell (no requests at all, a Gemini batch without a model) and returns the shard plan.

What is refused, and why:
- not UTF-8, not JSON, not an object; the line shapes and bodies of `providers.formats`;
- values standard JSON cannot carry (`NaN`, `Infinity`, numbers out of float range like `1e400`),
  lone surrogates (`\\ud800`, not encodable as UTF-8) and `\\u0000` (PostgreSQL `jsonb` cannot hold
  it, and in a custom_id it would not survive the provider's round trip) - they would otherwise fail
  the COPY later, naming no line;
- a duplicate custom_id, a line over the provider's per-request size or over the batch's own
  `max_bytes_per_shard` (no shard could hold it), a model differing from the
  batch's (a provider batch holds one model), more than `MAX_BATCH_REQUESTS` lines.

Pure and synchronous: no I/O, so the client and the worker give the same verdict on the same file.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from durabatch.estimate import CostEstimate
from durabatch.providers.anthropic import ANTHROPIC_LIMITS
from durabatch.providers.base import ProviderLimits
from durabatch.providers.formats import InvalidRequestLine, check_endpoint, model_of, normalize_line
from durabatch.providers.gemini import GEMINI_LIMITS
from durabatch.providers.openai import OPENAI_LIMITS
from durabatch.store.pool import RawJSON

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_BATCH_REQUESTS",
    "InvalidRequestLine",
    "InvalidRequests",
    "RawJSON",
    "RequestsValidator",
    "ShardPlanner",
    "StagedRequest",
    "capped",
    "iter_lines",
    "located",
]

#: One durabatch batch may hold this many requests (split into provider batches as needed); more
#: belongs in several batches, so one start never stages an unbounded file in one transaction.
MAX_BATCH_REQUESTS = 5_000_000

#: The documented limits of each provider, used where no provider client exists (the CLI, `BatchClient`).
DEFAULT_LIMITS: dict[str, ProviderLimits] = {
    "openai": OPENAI_LIMITS,
    "anthropic": ANTHROPIC_LIMITS,
    "gemini": GEMINI_LIMITS,
}


def capped(limits: ProviderLimits, max_requests: int | None, max_bytes: int | None) -> ProviderLimits:
    """The provider's limits, lowered to a batch's own caps on one provider batch."""
    return dataclasses.replace(
        limits,
        max_requests=min(limits.max_requests, max_requests or limits.max_requests),
        max_bytes=min(limits.max_bytes, max_bytes or limits.max_bytes),
    )


class InvalidRequests(ValueError):
    """The file as a whole cannot be a batch (no requests, no model for Gemini); names the field."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class StagedRequest(NamedTuple):
    """One validated request, shaped for COPY (a tuple: one is built per line)."""

    custom_id: str
    line_no: int
    shard: int
    body: RawJSON
    byte_size: int


@dataclass
class PlannedShard:
    shard: int
    request_count: int
    byte_size: int


class ShardPlanner:
    """Greedy: fill a shard until the next request would break the count or byte limit."""

    def __init__(self, limits: ProviderLimits) -> None:
        self._limits = limits
        self.plans: list[PlannedShard] = []

    def assign(self, size: int) -> int:
        current = self.plans[-1] if self.plans else None
        if (
            current is None
            or current.request_count + 1 > self._limits.max_requests
            or current.byte_size + size > self._limits.max_bytes
        ):
            current = PlannedShard(shard=len(self.plans), request_count=0, byte_size=0)
            self.plans.append(current)
        current.request_count += 1
        current.byte_size += size
        return current.shard


class _Unsendable:
    """Stands in for a number standard JSON cannot carry, so the refusal can name its field."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse_constant(name: str) -> _Unsendable:
    return _Unsendable(f"{name} is not standard JSON")


def _parse_float(text: str) -> float | _Unsendable:
    value = float(text)
    if math.isinf(value):
        return _Unsendable(f"the number {text[:40]} is out of range (beyond a 64-bit float)")
    return value


_DECODER = json.JSONDecoder(parse_constant=_parse_constant, parse_float=_parse_float)
#: Built once: json.dumps with options builds an encoder per call, a measurable cost per line.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _bad_value(value: Any, path: str) -> tuple[str, str] | None:
    """(field path, reason) of the first value standard JSON or PostgreSQL cannot take, if any."""
    if isinstance(value, _Unsendable):
        return path, value.reason
    if isinstance(value, float) and not math.isfinite(value):  # inline items parsed elsewhere
        return path, f"{value} is not standard JSON"
    if isinstance(value, str):
        return _bad_text(value, path)
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            found = _bad_text(str(key), where + " (key)") or _bad_value(item, where)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _bad_value(item, f"{path}[{i}]")
            if found:
                return found
    return None


def _bad_text(text: str, path: str) -> tuple[str, str] | None:
    if "\x00" in text:
        return path, "holds \\u0000 (NUL), which PostgreSQL cannot store"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return path, f"holds a lone surrogate (\\u{ord(text[exc.start]):04x}), which is not valid Unicode"
    return None


class RequestsValidator:
    """Validates a batch's lines one at a time and plans its shards as they stream past."""

    def __init__(
        self, provider: str, endpoint: str, model: str | None, limits: ProviderLimits | None = None
    ) -> None:
        try:
            check_endpoint(provider, endpoint)
        except ValueError as exc:
            raise InvalidRequests("endpoint", str(exc)) from None
        self.provider = provider
        self.endpoint = endpoint
        self.model = model
        self.limits = limits or DEFAULT_LIMITS[provider]
        self.planner = ShardPlanner(self.limits)
        self.count = 0
        self.total_bytes = 0
        #: token totals for the cost guard and `--dry-run`, counted as the lines go by
        self.estimate = CostEstimate()
        self._seen: set[str] = set()

    def feed(self, line_no: int, raw: Any) -> StagedRequest | None:
        obj = self._decode(line_no, raw)
        if obj is None:
            return None
        if isinstance(obj, dict):
            # A bad custom_id is named as such, before the shape checks look at it.
            for id_field in ("custom_id", "key"):
                value = obj.get(id_field)
                if isinstance(value, str) and ("\x00" in value or not value.isascii()):
                    found = _bad_text(value, id_field)
                    if found:
                        raise InvalidRequestLine(line_no, *found)
        line = normalize_line(obj, line_no, self.provider, self.endpoint)
        if line.custom_id in self._seen:
            raise InvalidRequestLine(line_no, "custom_id", f"duplicate custom_id {line.custom_id!r}")
        self._seen.add(line.custom_id)
        body = line.body
        line_model = model_of(self.provider, body)
        if line_model is None and self.model is not None and self.provider != "gemini":
            body = {**body, "model": self.model}
        elif line_model is not None:
            if self.model is None:
                self.model = line_model
            elif line_model != self.model:
                raise InvalidRequestLine(
                    line_no,
                    "model",
                    f"{line_model!r} differs from the batch's model {self.model!r}; a provider batch holds one model",
                )
        body_field = "body" if "body" in obj else "params" if "params" in obj else "request"
        data = self._encode(line_no, body, body_field)
        size = len(data)
        if size > self.limits.max_line_bytes:
            raise InvalidRequestLine(
                line_no,
                None,
                f"request is {size} bytes, over {self.provider}'s limit of {self.limits.max_line_bytes} bytes "
                "per request",
            )
        if size > self.limits.max_bytes:
            # only a batch's own cap is below a line's limit: alone in a shard it would still break it
            raise InvalidRequestLine(
                line_no,
                None,
                f"request is {size} bytes, over the batch's max_bytes_per_shard of {self.limits.max_bytes} "
                "bytes; raise the cap or shorten the request",
            )
        self.count += 1
        if self.count > MAX_BATCH_REQUESTS:
            raise InvalidRequestLine(
                line_no, None, f"more than {MAX_BATCH_REQUESTS} requests; split the file into several batches"
            )
        self.total_bytes += size
        self.estimate.add(self.provider, self.endpoint, body, size)
        shard = self.planner.assign(size)
        return StagedRequest(line.custom_id, line_no, shard, data, size)

    def finish(self, source: str) -> list[PlannedShard]:
        """The shard plan, once every line was fed; `source` names the input in errors."""
        if self.count == 0:
            raise InvalidRequests(source, "the batch has no requests (empty input or blank lines only)")
        if self.provider == "gemini" and self.model is None:
            raise InvalidRequests(
                "model",
                "a Gemini batch needs a model: give the batch's model, or 'model' in the request bodies",
            )
        return self.planner.plans

    def _decode(self, line_no: int, raw: Any) -> Any:
        if not isinstance(raw, bytes):
            return raw  # an inline item, parsed by whoever built it; _encode checks its values
        raw = raw.removesuffix(b"\r")
        if line_no == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark, as some editors write
        if not raw.strip():
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequestLine(line_no, None, f"not valid UTF-8 (byte {exc.start + 1})") from None
        try:
            return _DECODER.decode(text)
        except json.JSONDecodeError as exc:
            # The line number is ours; the decoder's own "line 1 column N" would repeat it, and
            # some of its messages end in "at" (they expect the position to follow).
            reason = exc.msg.removesuffix(" at")
            raise InvalidRequestLine(
                line_no, None, f"not valid JSON at column {exc.colno}: {reason[:1].lower()}{reason[1:]}"
            ) from None
        except ValueError as exc:  # e.g. an integer beyond Python's digit limit
            raise InvalidRequestLine(line_no, None, f"not valid JSON ({exc})") from None

    def _encode(self, line_no: int, body: dict[str, Any], body_field: str) -> RawJSON:
        # One dump serves as size, bad-value check and COPY payload; only a failure walks the body
        # to name the field.
        try:
            data = RawJSON(_ENCODER.encode(body).encode("utf-8"))
        except (TypeError, ValueError):  # _Unsendable, NaN, or a lone surrogate (UnicodeEncodeError)
            data = RawJSON()
        if data and data.find(b"\\u0000") < 0:
            return data
        found = _bad_value(body, body_field)
        if found is None:
            if data:  # an escaped backslash before "u0000": a harmless text, not a NUL
                return data
            found = (body_field, "cannot be encoded as standard JSON")
        raise InvalidRequestLine(line_no, *found)


def located(path: object, exc: InvalidRequestLine | InvalidRequests) -> str:
    """A refusal as `FILE:LINE: field 'f': reason` (the CLI, `BatchClient` and the dry run say it
    the same way)."""
    if isinstance(exc, InvalidRequestLine):
        field = f"field {exc.field!r}: " if exc.field else ""
        return f"{path}:{exc.line_no}: {field}{exc.reason}"
    return f"{path}: {exc}"


def iter_lines(chunks: Iterator[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line number, line) from byte chunks; line numbers count blank lines too."""
    pending = b""
    line_no = 0
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            line_no += 1
            yield line_no, line
    if pending:
        yield line_no + 1, pending
