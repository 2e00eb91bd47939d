"""Fault rules: what can go wrong, where, and how many times.

Two kinds:

* **wire faults** act on one HTTP exchange matched by provider and operation:
  `http_error`, `slow`, `drop_connection`, `truncate_download`, `lose_create_response`;
* **batch faults** are taken by the next matching batch when it is created and shape its life:
  `token_limit_exceeded`, `all_fail`, `request_errors`, `malformed_output_lines`,
  `duplicate_output_lines`, `missing_results`, `stuck_finalizing`, `expire_after`, `crlf_lines`,
  and the hostile ones: `hostile_output_lines` (`\u0000`, a lone surrogate and numbers no float
  holds in a result line), `stray_output_lines` (a result for a custom_id not in the batch),
  `no_output_file` (OpenAI: completed without an output file) and `unknown_status` (OpenAI: a
  status no client knows, for ever).

Batch faults can also be asked for per batch with a marker (`__<fault name>` in an OpenAI metadata
value, a Gemini displayName or an Anthropic batch's first custom_id), and per request with a marker
in the custom_id / key (`__fail_<status>`, `__missing`, `__malformed`, `__duplicate`, `__hostile`,
`__stray`).
"""

from __future__ import annotations

import itertools
import threading
from typing import Literal

from pydantic import BaseModel, Field, model_validator

__all__ = [
    "BATCH_FAULTS",
    "DOWNLOAD_OPERATIONS",
    "WIRE_FAULTS",
    "Fault",
    "FaultRegistry",
    "FaultSpec",
]

WIRE_FAULTS = frozenset(
    {"http_error", "slow", "drop_connection", "truncate_download", "lose_create_response"}
)
BATCH_FAULTS = frozenset(
    {
        "token_limit_exceeded",
        "all_fail",
        "request_errors",
        "malformed_output_lines",
        "duplicate_output_lines",
        "missing_results",
        "stuck_finalizing",
        "expire_after",
        "crlf_lines",
        "hostile_output_lines",
        "stray_output_lines",
        "no_output_file",
        "unknown_status",
    }
)
#: operations that stream a results body; `truncate_download` only matches these
DOWNLOAD_OPERATIONS = frozenset({"files.content", "batches.results", "files.download"})

FaultName = Literal[
    "http_error",
    "slow",
    "drop_connection",
    "truncate_download",
    "lose_create_response",
    "token_limit_exceeded",
    "all_fail",
    "request_errors",
    "malformed_output_lines",
    "duplicate_output_lines",
    "missing_results",
    "stuck_finalizing",
    "expire_after",
    "crlf_lines",
    "hostile_output_lines",
    "stray_output_lines",
    "no_output_file",
    "unknown_status",
]
ProviderName = Literal["openai", "anthropic", "gemini"]


class FaultSpec(BaseModel):
    """The JSON body of `POST /_emulator/faults`."""

    fault: FaultName
    provider: ProviderName | None = None
    #: e.g. "batches.retrieve"; None matches every operation (see docs/emulator.md for names)
    operation: str | None = None
    #: how many times the fault fires; None = until deleted
    count: int | None = Field(default=None, ge=1)
    #: http_error: the status to answer with
    status: int = Field(default=503, ge=400, le=599)
    #: http_error 429/503: value of the Retry-After header in seconds (None = no header)
    retry_after: float | None = None
    #: http_error: value of the `retry-after-ms` header the Stainless SDKs prefer (None = no header)
    retry_after_ms: int | None = None
    #: http_error: value of `x-should-retry` (true/false), which the SDKs obey before the status
    should_retry: bool | None = None
    #: slow: seconds to wait before answering
    delay_seconds: float = Field(default=1.0, ge=0)
    #: truncate_download: bytes of the body sent before the connection closes (default: half)
    after_bytes: int | None = Field(default=None, ge=0)
    #: batch faults that touch some requests: how many (the first N in input order)
    requests: int = Field(default=1, ge=1)
    #: expire_after: the batch expires this many seconds after creation
    seconds: float = Field(default=1.0, ge=0)
    #: request_errors / all_fail: the per-request HTTP status
    request_status: int = Field(default=500, ge=400, le=599)

    @model_validator(mode="after")
    def _check(self) -> FaultSpec:
        if self.fault == "http_error" and self.status == 429 and self.retry_after is None:
            self.retry_after = 1.0
        return self


class Fault(BaseModel):
    id: str
    spec: FaultSpec
    remaining: int | None
    fired: int = 0

    @property
    def is_wire(self) -> bool:
        return self.spec.fault in WIRE_FAULTS


class FaultRegistry:
    """Active faults; `take` consumes one occurrence of the first rule that matches."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, spec: FaultSpec) -> Fault:
        fault = Fault(id=f"fault_{next(self._ids)}", spec=spec, remaining=spec.count)
        with self._lock:
            self._faults.append(fault)
        return fault

    def all(self) -> list[Fault]:
        return list(self._faults)

    def remove(self, fault_id: str) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) != before

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(
        self, names: frozenset[str], provider: str, operation: str | None, skip: frozenset[str] = frozenset()
    ) -> Fault | None:
        """Consume one occurrence of the first active fault named in `names` matching the call;
        `skip` holds the ids of the rules this call took already (a rule acts once per call)."""
        if not self._faults:
            return None
        with self._lock:
            for f in self._faults:
                s = f.spec
                if s.fault not in names or f.id in skip:
                    continue
                if s.provider is not None and s.provider != provider:
                    continue
                if operation is not None and s.operation is not None and s.operation != operation:
                    continue
                if s.fault == "truncate_download" and operation not in DOWNLOAD_OPERATIONS:
                    continue
                f.fired += 1
                if f.remaining is not None:
                    f.remaining -= 1
                    if f.remaining <= 0:
                        self._faults.remove(f)
                return f
        return None

    def take_batch_faults(self, provider: str) -> list[FaultSpec]:
        """Every batch fault that applies to a batch being created now (each consumed once)."""
        taken: list[FaultSpec] = []
        seen: set[str] = set()
        while True:
            remaining = frozenset(BATCH_FAULTS - seen)
            f = self.take(remaining, provider, "batches.create")
            if f is None:
                return taken
            seen.add(f.spec.fault)
            taken.append(f.spec)
