"""The workflow's side of the input contract: `durabatch.contract` holds the rules, this module
only names what the workflow uses (kept so imports of `workflows.validate` go on working)."""

from __future__ import annotations

from durabatch.contract import (
    DEFAULT_HANDLER_GRACE_SECONDS,
    BatchConfig,
    InvalidBatchInput,
    decode_input,
    validate_input,
)

__all__ = [
    "DEFAULT_HANDLER_GRACE_SECONDS",
    "BatchConfig",
    "InvalidBatchInput",
    "decode_input",
    "validate_input",
]
