"""submit_shard, poll_shards, cancel_provider_batches: the provider side of a batch.

submit_shard is idempotent: it records the attempt in `provider_batches` before calling the
provider, and a retry (after a crash, a timeout, a lost response) first asks the provider for the
batch that attempt created (`find_submitted`) instead of creating a second one.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from datetime import timedelta

from temporalio import activity

from activities.deps import ActivityDeps
from activities.errors import to_application_error
from activities.heartbeat import heartbeating
from durabatch import activity_api as api
from durabatch.activity_api import CancelInput, PollInput, PollResult, RoundInput, SubmitInput, SubmitResult
from durabatch.contract import PROVIDER_TERMINAL_STATES
from durabatch.models import ShardState
from durabatch.providers import errors as perr
from durabatch.providers.base import ProviderBatchRef, RequestLine, ShardSubmission
from durabatch.store import batches, provider_batches, requests

__all__ = ["SubmissionActivities", "shard_tag"]


def shard_tag(workflow_id: str, shard: int, round_: int) -> str:
    """Stable across retries and continue-as-new (the workflow id stays), and free of secrets."""
    return f"durabatch:{workflow_id}:s{shard}:r{round_}"


class SubmissionActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name=api.activity_name(api.submit_shard))
    async def submit_shard(self, inp: SubmitInput) -> SubmitResult:
        async with heartbeating():
            return await self._submit_shard(inp)

    async def _submit_shard(self, inp: SubmitInput) -> SubmitResult:
        pool = self._deps.pool
        provider = self._deps.provider(inp.provider)
        tag = shard_tag(inp.workflow_id, inp.shard, inp.round)
        count, byte_size = await requests.shard_size(pool, inp.batch_id, inp.shard, inp.round)
        row = await provider_batches.record_attempt(
            pool,
            batch_id=inp.batch_id,
            shard=inp.shard,
            round_=inp.round,
            provider=inp.provider,
            tag=tag,
            request_count=count,
        )
        if row["provider_batch_id"]:
            # An earlier attempt got as far as recording the provider's id.
            found = ProviderBatchRef(
                provider=inp.provider,
                provider_batch_id=row["provider_batch_id"],
                input_file_id=row["input_file_id"],
            )
            return SubmitResult(ref=found, reused=True)

        def stream() -> AsyncIterator[RequestLine]:
            return self._request_lines(inp.batch_id, inp.shard, inp.round)

        # Batches the store already owns can never be this attempt's: providers without metadata
        # (Anthropic) match by size and time, and must not claim another shard's batch.
        known = await provider_batches.known_ids(
            pool, inp.provider, row["attempt_started_at"] - timedelta(hours=1)
        )
        submission = ShardSubmission(
            tag=tag,
            batch_id=inp.batch_id,
            shard=inp.shard,
            round=inp.round,
            endpoint=inp.endpoint,
            model=inp.model,
            request_count=count,
            byte_size=byte_size,
            requests=stream,
            attempt_started_at=row["attempt_started_at"].timestamp(),
            exclude_batch_ids=known,
            input_file_id=row["input_file_id"],
            on_uploaded=functools.partial(self._record_input_file, inp),
        )
        try:
            ref = None
            if activity.info().attempt > 1 or row["updated_at"] != row["attempt_started_at"]:
                ref = await provider.find_submitted(submission)
            reused = ref is not None
            if ref is None:
                ref = await provider.submit(submission)
        except perr.ProviderError as exc:
            if not exc.retryable:
                # This submit ends here: the file it uploaded will never be used.
                await self._delete_input_file(inp)
            raise to_application_error(exc) from exc
        await provider_batches.record_submitted(
            pool,
            batch_id=inp.batch_id,
            shard=inp.shard,
            round_=inp.round,
            provider_batch_id=ref.provider_batch_id,
            input_file_id=ref.input_file_id,
            # a batch found again may have moved on since: left unknown, the next sweep wakes it
            provider_status=None if reused else provider.created_status,
        )
        await requests.mark_submitted(pool, inp.batch_id, inp.shard, inp.round)
        await batches.set_status(pool, inp.batch_id, "submitted")
        activity.logger.info(
            "submitted shard",
            extra={"batch_id": inp.batch_id, "shard": inp.shard, "provider_batch_id": ref.provider_batch_id},
        )
        return SubmitResult(ref=ref, reused=reused)

    async def _record_input_file(self, inp: SubmitInput, file_id: str) -> None:
        await provider_batches.record_input_file(
            self._deps.pool, batch_id=inp.batch_id, shard=inp.shard, round_=inp.round, input_file_id=file_id
        )

    async def _delete_input_file(self, inp: SubmitInput) -> None:
        """Best effort: a provider that cannot delete files, or fails to, keeps the orphan."""
        row = await provider_batches.get(self._deps.pool, inp.batch_id, inp.shard, inp.round)
        provider = self._deps.provider(inp.provider)
        delete = getattr(provider, "delete_input_file", None)
        if row is None or not row["input_file_id"] or row["provider_batch_id"] or delete is None:
            return
        try:
            await delete(row["input_file_id"])
        except perr.ProviderError as exc:
            activity.logger.warning(
                "could not delete the input file of a failed create",
                extra={"batch_id": inp.batch_id, "shard": inp.shard, "error": str(exc)},
            )

    async def _request_lines(self, batch_id: str, shard: int, round_: int) -> AsyncIterator[RequestLine]:
        async for custom_id, body in requests.iter_shard(self._deps.pool, batch_id, shard, round_):
            yield RequestLine(custom_id=custom_id, body=body)

    @activity.defn(name=api.activity_name(api.poll_shards))
    async def poll_shards(self, inp: PollInput) -> PollResult:
        provider = self._deps.provider(inp.provider)
        polled: list[ShardState] = []
        for shard in inp.shards:
            try:
                status = await provider.status(shard.require_ref())
            except perr.NotFound as exc:
                # Reported, not raised: the workflow counts consecutive answers like this and
                # ends the batch after a few (another key's organisation, a provider that lost state).
                activity.logger.warning(
                    "provider does not know the batch",
                    extra={
                        "batch_id": inp.batch_id,
                        "provider_batch_id": shard.provider_batch_id,
                        "error": str(exc),
                    },
                )
                polled.append(shard.model_copy(update={"not_found": True}))
                continue
            except perr.ProviderError as exc:
                raise to_application_error(exc) from exc
            fresh = shard.model_copy(
                update={
                    "not_found": False,
                    "provider_status": status.provider_status,
                    "state": status.state,
                    "succeeded": status.counts.succeeded,
                    "failed": status.counts.failed,
                    "failure_code": status.failure_code,
                    "failure_message": status.failure_message,
                    "retry_later": status.retry_later,
                }
            )
            await provider_batches.record_status(
                self._deps.pool,
                batch_id=inp.batch_id,
                shard=shard.shard,
                round_=shard.round,
                provider_status=status.provider_status,
                terminal=status.terminal,
                output_file_id=status.output_location,
                error_file_id=status.error_location,
            )
            polled.append(fresh)
        found = [s for s in polled if not s.not_found]
        if found:
            overall = (
                "finalizing" if all(s.state in PROVIDER_TERMINAL_STATES for s in found) else "in_progress"
            )
            await batches.set_progress(self._deps.pool, inp.batch_id, overall)
        return PollResult(shards=polled)

    @activity.defn(name=api.activity_name(api.start_round))
    async def start_round(self, inp: RoundInput) -> int:
        """Move a shard's requests from one round to the next; a retry finds them moved already."""
        return await requests.move_to_round(
            self._deps.pool, inp.batch_id, inp.shard, inp.from_round, inp.to_round
        )

    @activity.defn(name=api.activity_name(api.cancel_provider_batches))
    async def cancel_provider_batches(self, inp: CancelInput) -> None:
        """Best effort, and it also cancels a batch a cancelled submit may have created unseen."""
        provider = self._deps.provider(inp.provider)
        for shard in inp.shards:
            try:
                if shard.ref is not None:
                    await provider.cancel(shard.require_ref())
                    continue
                row = await provider_batches.get(self._deps.pool, inp.batch_id, shard.shard, shard.round)
                if row is None:
                    continue
                submission = ShardSubmission(
                    tag=row["tag"],
                    batch_id=inp.batch_id,
                    shard=shard.shard,
                    round=shard.round,
                    endpoint="",
                    model=None,
                    request_count=row["request_count"],
                    byte_size=0,
                    requests=functools.partial(self._request_lines, inp.batch_id, shard.shard, shard.round),
                    attempt_started_at=row["attempt_started_at"].timestamp(),
                )
                found = await provider.find_submitted(submission)
                if found is not None:
                    await provider.cancel(found)
            except perr.ProviderError as exc:
                activity.logger.warning(
                    "provider cancel failed",
                    extra={"batch_id": inp.batch_id, "shard": shard.shard, "error": str(exc)},
                )
                if exc.retryable:
                    raise to_application_error(exc) from exc
