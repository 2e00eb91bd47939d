"""The cost limit of a batch (`max_cost_usd`): its bound, and when an estimate breaks it.

Checked before anything is sent: by the CLI and `BatchClient` before they start a batch whose file
they staged, and by the workflow right after staging (so a start through the `temporal` CLI is
guarded too). The estimate itself is durabatch/estimate.py's; this module only judges it.

Pure: workflow code calls it.
"""

from __future__ import annotations

__all__ = ["MAX_COST_USD", "cost_refusal"]

#: A budget beyond this is a typo (one billion dollars).
MAX_COST_USD = 1e9


def cost_refusal(max_cost_usd: float, cost_high_usd: float | None, model: str | None) -> str | None:
    """Why a batch must be refused (its estimate's high end is above the limit, or no price is
    known to estimate with), or None when it is within its limit."""
    if cost_high_usd is None:
        return (
            f"max_cost_usd is set but no batch price is known for model {model!r}, so the cost cannot be "
            "estimated; add the model to the prices file (DURABATCH_PRICES_FILE) or leave max_cost_usd out"
        )
    if cost_high_usd > max_cost_usd:
        return (
            f"the estimated cost is up to ${cost_high_usd:.4f}, above max_cost_usd ${max_cost_usd:.4f}; "
            "nothing was sent (see `durabatch submit --dry-run`)"
        )
    return None
