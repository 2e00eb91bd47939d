"""Signed webhook deliveries: how durabatch signs a completion POST and how a receiver verifies it.

Headers sent with every delivery:
    X-Durabatch-Timestamp     unix seconds when the delivery was signed
    X-Durabatch-Signature     "v1=" + hex HMAC-SHA256 of f"{timestamp}.{body}" under the shared secret
    Idempotency-Key           stable for a batch's handler across retries: receivers dedupe on it
A receiver rejects a body that was altered (signature mismatch), replayed later than the
tolerance (timestamp too old), or replayed within it (a `ReplayGuard` has already seen that signed
delivery), which is what `verify_signature` does. A retry by durabatch is signed afresh, so it is
not a replay; it carries the same Idempotency-Key, on which the receiver dedupes.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "ReplayGuard",
    "WebhookVerificationError",
    "sign",
    "signature_headers",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Durabatch-Signature"
TIMESTAMP_HEADER = "X-Durabatch-Timestamp"
DEFAULT_TOLERANCE_SECONDS = 300


class WebhookVerificationError(ValueError):
    pass


class ReplayGuard:
    """The signatures a receiver accepted within the tolerance window. One signed delivery sent
    again inside the window is a replay; older ones are refused by their timestamp anyway, so they
    are forgotten and memory stays bounded by the deliveries of one window."""

    def __init__(self, tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS) -> None:
        self.tolerance_seconds = tolerance_seconds
        self._seen: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def remember(self, signature: str, timestamp: int, now: float) -> None:
        """Record an accepted delivery; raise WebhookVerificationError if it was seen before."""
        cutoff = now - self.tolerance_seconds
        # insertion order is close to timestamp order: forget from the oldest until a recent one
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if at >= cutoff:
                break
            del self._seen[oldest]
        if signature in self._seen:
            raise WebhookVerificationError("replayed delivery: this signature was already accepted")
        self._seen[signature] = timestamp


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signature_headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


def verify_signature(
    secret: str,
    body: bytes,
    timestamp_header: str | None,
    signature_header: str | None,
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
    replay_guard: ReplayGuard | None = None,
) -> None:
    """Raise WebhookVerificationError unless the body is authentic and fresh (and, given a
    `replay_guard`, not a delivery already accepted)."""
    if not timestamp_header or not signature_header:
        raise WebhookVerificationError("missing signature headers")
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        raise WebhookVerificationError("malformed timestamp") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise WebhookVerificationError("timestamp outside the tolerance: replayed or delayed delivery")
    if not hmac.compare_digest(sign(secret, timestamp, body), signature_header):
        raise WebhookVerificationError("signature mismatch: body altered or wrong secret")
    if replay_guard is not None:
        replay_guard.remember(signature_header, timestamp, current)
