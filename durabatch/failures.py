"""Reading a failed batch: the `BatchSummary` its workflow's `BatchFailed` failure carries.

Exported by `durabatch.contract` with the rest of the contract.
"""

from __future__ import annotations

from durabatch.models import BatchSummary
from durabatch.vocabulary import BATCH_FAILED

__all__ = ["summary_from_failure"]


def summary_from_failure(err: BaseException) -> BatchSummary | None:
    """The `BatchSummary` a failed batch's workflow carries in its `BatchFailed` failure, or None.

    Takes what a client or a parent workflow catches (`WorkflowFailureError`, `ChildWorkflowError`)
    or the `ApplicationError` itself.
    """
    seen: BaseException | None = err
    for _ in range(4):  # the failure, its cause, and so on: a short chain
        if seen is None:
            return None
        if getattr(seen, "type", None) == BATCH_FAILED:
            details = getattr(seen, "details", None) or ()
            if details and isinstance(details[0], dict | BatchSummary):
                return BatchSummary.model_validate(details[0])
            return None
        seen = getattr(seen, "cause", None) or seen.__cause__
    return None
