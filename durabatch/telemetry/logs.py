"""Logs: one JSON object per line, secrets masked.

`configure_logging(level)` installs one handler that writes one JSON object per line. Fields passed in
`extra` (`batch_id`, `workflow_id`, `action`, ...) become top-level keys; the `workflow_id` that
`activity.logger` / `workflow.logger` attach is lifted to the top level too, and `batch_id` is derived
from a `batch-<batch_id>` workflow id when not given. Keys that name secrets are masked, and the values
of the provider API key variables are masked wherever they appear, so a key pasted into a message or
an exception still never reaches the log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

from durabatch.settings import API_KEY_ENV

__all__ = ["MASK", "JsonFormatter", "configure_logging"]

MASK = "***"

#: Attributes every LogRecord has; anything else on a record came from `extra`.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

#: Extra keys that must never be logged in clear, whatever their value.
_SECRET_KEY = re.compile(r"(api[_-]?key|secret|password|passwd|authorization|credential)", re.IGNORECASE)

#: Keys lifted to the top level from the dicts that Temporal's activity and workflow loggers attach.
_TEMPORAL_FIELDS = ("workflow_id", "run_id", "workflow_run_id", "workflow_type", "activity_type", "attempt")

#: A batch's workflow id is `batch-<batch_id>` (docs/architecture.md), so a record with only the workflow id
#: still gets its batch id.
_BATCH_PREFIX = "batch-"

#: Secret values shorter than this are not masked: masking "x" everywhere would mangle every line.
_MIN_SECRET_LEN = 8


class JsonFormatter(logging.Formatter):
    """One JSON object per record: `ts`, `level`, `logger`, `msg`, the `extra` fields, `exc`.

    `secrets` are literal values (API keys) replaced by `***` in the whole output line.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= _MIN_SECRET_LEN}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _RECORD_FIELDS or key in entry:
                continue
            if key in ("temporal_activity", "temporal_workflow") and isinstance(value, Mapping):
                for field in _TEMPORAL_FIELDS:
                    if field in value:
                        entry.setdefault(field, value[field])
                continue
            entry[key] = MASK if _SECRET_KEY.search(key) else value
        workflow_id = entry.get("workflow_id")
        if "batch_id" not in entry and isinstance(workflow_id, str) and workflow_id.startswith(_BATCH_PREFIX):
            entry["batch_id"] = workflow_id.removeprefix(_BATCH_PREFIX)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        line = json.dumps(entry, default=str, ensure_ascii=False)
        for secret in self._secrets:
            line = line.replace(secret, MASK)
        return line


def _api_key_values(environ: Mapping[str, str]) -> list[str]:
    return [value for name in API_KEY_ENV.values() if (value := environ.get(name, "").strip())]


def configure_logging(level: str, *, stream: Any = None, secrets: Iterable[str] | None = None) -> None:
    """Send every log record at `level` or above to `stream` (stderr) as one JSON object per line.

    Replaces the root logger's handlers, so calling it twice is harmless. `secrets` defaults to the
    values of the provider API key variables (`OPENAI_API_KEY`, ...) in the environment right now.
    Temporal's activity and workflow loggers stop appending their info dict to the message, since
    the formatter already lifts `workflow_id` from it into its own field.
    """
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter(_api_key_values(os.environ) if secrets is None else secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Imported here, not at the top: providers and the store log through this module's formatter
    # and must not pull in Temporal.
    import temporalio.activity
    import temporalio.workflow

    temporalio.activity.logger.activity_info_on_message = False
    temporalio.workflow.logger.workflow_info_on_message = False
