"""AccountWorkflow: one per provider account, it hands out room in the account's queue.

Batch workflows ask for room for a shard (`request`, sent with signal-with-start by the
`request_admission` activity, so the account workflow exists whenever someone waits), and give it
back when the provider batch ends (`release`). A grant is told to the batch with its `admission`
signal. The order and the limits are durabatch/admission.py's. The state is small (one entry per
shard waiting or running) and is carried across continue-as-new.

Workflow code: deterministic, no I/O but signals.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict

    from durabatch.admission import (
        ACCOUNT_WORKFLOW_TYPE,
        GRANT_SIGNAL,
        REFUSED_SIGNAL,
        RELEASE_SIGNAL,
        REQUEST_SIGNAL,
        AccountLimits,
        AccountState,
        AdmissionRequest,
        grantable,
        lowered_token_limit,
        waiting_reason,
    )

__all__ = ["AccountInput", "AccountWorkflow"]

#: Roll over long before the history limits; the state is tiny.
_EVENTS_PER_RUN = 2000


class AccountInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    provider: str
    state: AccountState | None = None


@workflow.defn(name=ACCOUNT_WORKFLOW_TYPE)
class AccountWorkflow:
    def __init__(self) -> None:
        self._provider = ""
        self._state = AccountState()
        self._changed = False
        #: granted keys whose batch asked again (a retried activity): told once more
        self._retell: list[str] = []

    @workflow.run
    async def run(self, raw: Any = None) -> None:
        inp = AccountInput.model_validate(raw or {})
        self._provider = inp.provider
        if inp.state is not None:
            self._state = inp.state
            self._changed = True
        while True:
            await workflow.wait_condition(
                lambda: self._changed or workflow.info().get_current_history_length() > _EVENTS_PER_RUN
            )
            self._changed = False
            retell, self._retell = self._retell, []
            for key in retell:
                if key in self._state.granted:
                    await self._tell(self._state.granted[key])
            for grant in grantable(self._state):
                await self._tell(grant)
            if workflow.info().get_current_history_length() > _EVENTS_PER_RUN:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(AccountInput(provider=self._provider, state=self._state))

    async def _tell(self, grant: AdmissionRequest) -> None:
        try:
            await workflow.get_external_workflow_handle(grant.workflow_id).signal(
                GRANT_SIGNAL, {"key": grant.key, "granted": True}
            )
        except Exception as exc:  # the batch has ended meanwhile: its room is free again
            workflow.logger.info("grant %s not delivered (%s): released", grant.key, exc)
            self._state.granted.pop(grant.key, None)
            self._changed = True

    @workflow.signal(name=REQUEST_SIGNAL)
    def request(self, payload: Any) -> None:
        body = payload if isinstance(payload, dict) else {}
        if "limits" in body:
            # the requesting worker's settings: the latest word on the account's limits
            learnt = AccountLimits.model_validate(body["limits"])
            lowered = self._state.limits.queue_tokens
            learnt.queue_tokens = {m: min(t, lowered.get(m, t)) for m, t in learnt.queue_tokens.items()}
            self._state.limits = learnt
        req = AdmissionRequest.model_validate(body.get("request") or {})
        if req.key in self._state.granted:
            # a retried request activity: say it again (the batch ignores a second grant)
            self._retell.append(req.key)
        elif not any(w.key == req.key for w in self._state.waiting):
            self._state.seq += 1
            req.seq = self._state.seq
            self._state.waiting.append(req)
        self._changed = True

    @workflow.signal(name=RELEASE_SIGNAL)
    def release(self, payload: Any) -> None:
        key = payload.get("key") if isinstance(payload, dict) else None
        self._state.granted.pop(str(key), None)
        self._state.waiting = [w for w in self._state.waiting if w.key != key]
        self._changed = True

    @workflow.signal(name=REFUSED_SIGNAL)
    def refused(self, payload: Any) -> None:
        """The provider refused a granted shard for queue room: lower the model's estimate."""
        body = payload if isinstance(payload, dict) else {}
        key, model = str(body.get("key")), body.get("model")
        grant = self._state.granted.get(key)
        if isinstance(model, str) and grant is not None:
            self._state.limits.queue_tokens[model] = lowered_token_limit(
                self._state, model, key, grant.demand.tokens
            )
        self._state.granted.pop(key, None)
        self._changed = True

    @workflow.query(name="status")
    def status(self) -> AccountState:
        return self._state

    @workflow.query(name="waiting_reason")
    def waiting_reason(self, key: str) -> str | None:
        if key in self._state.granted:
            return None
        return waiting_reason(self._state, key)
