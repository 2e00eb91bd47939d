"""The upgrade gate: every recorded history of every scenario replays on today's workflow code.

A change to the workflow that would break batches in flight raises NondeterminismError here;
guard such a change with `workflow.patched(...)`. Record new histories with
`DURABATCH_RECORD_HISTORIES=1 make test` (see docs/deploy.md).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from durabatch.converter import DATA_CONVERTER
from workflows.batch import BatchWorkflow
from workflows.smoke import SmokeWorkflow
from workflows.sweep import AccountSweepWorkflow

HISTORIES = sorted(
    p for p in (Path(__file__).parent / "histories").iterdir() if p.name.endswith((".json", ".json.gz"))
)


def test_history_corpus_is_present() -> None:
    assert len(HISTORIES) >= 8, "tests/histories/ lost its recorded histories"


def _name(path: Path) -> str:
    return path.name.removesuffix(".gz").removesuffix(".json")


@pytest.mark.parametrize("path", HISTORIES, ids=[_name(p).split("@")[0] for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    workflow_id = _name(path).split("@", 1)[1]
    raw = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    history = WorkflowHistory.from_json(workflow_id, raw)
    await Replayer(
        workflows=[BatchWorkflow, AccountSweepWorkflow, SmokeWorkflow], data_converter=DATA_CONVERTER
    ).replay_workflow(history)
