"""The errors `BatchClient` and `BatchHandle` raise (the tree is drawn in `durabatch.client`)."""

from __future__ import annotations

__all__ = [
    "BatchAlreadyExists",
    "BatchEnded",
    "BatchError",
    "BatchNotFound",
    "BatchWorkflowFailed",
    "CostLimitExceeded",
    "InvalidRequestsFile",
    "StoreNotConfigured",
]


class BatchError(Exception):
    """Base of the client's errors."""


class BatchNotFound(BatchError, LookupError):
    """No batch with this id exists (in the namespace, or in the store for `results()`)."""


class BatchAlreadyExists(BatchError):
    """A batch with this id was started before; batch ids are never reused."""


class BatchEnded(BatchError):
    """The batch has already ended, so it can no longer be cancelled."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


class BatchWorkflowFailed(BatchError):
    """The batch's workflow failed, was terminated or timed out instead of returning a summary."""


class CostLimitExceeded(BatchError, ValueError):
    """The batch's estimated cost is above its `max_cost_usd` (or no price is known to estimate
    it): refused before anything was staged or sent."""


class InvalidRequestsFile(BatchError, ValueError):
    """A requests file refused before its batch started; the message names the file's absolute
    path, the line and the field (`line_no` is None for a whole-file problem)."""

    def __init__(self, message: str, line_no: int | None = None) -> None:
        super().__init__(message)
        self.line_no = line_no


class StoreNotConfigured(BatchError, LookupError):
    """No DURABATCH_DATABASE_URL and no running `durabatch dev` on the data dir."""
