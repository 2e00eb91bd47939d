"""The import direction of DESIGN.md: who may import what."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def first_party(names: set[str]) -> set[str]:
    return {n for n in names if n.split(".")[0] in {"durabatch", "workflows", "activities", "worker"}}


@pytest.mark.parametrize("path", modules("workflows"), ids=lambda p: p.name)
def test_workflows_import_only_models_and_workflows(path: Path) -> None:
    allowed = ("durabatch.models", "durabatch.contract", "workflows")
    bad = {n for n in first_party(imports_of(path)) if not n.startswith(allowed)}
    assert not bad, f"{path.name} imports {bad}"
    assert "httpx" not in imports_of(path) and "asyncpg" not in imports_of(path)


@pytest.mark.parametrize("path", modules("durabatch/providers"), ids=lambda p: p.name)
def test_providers_know_nothing_of_temporal_or_the_store(path: Path) -> None:
    names = imports_of(path)
    assert not {
        n for n in names if n.startswith(("temporalio", "durabatch.store", "activities", "workflows"))
    }


@pytest.mark.parametrize("path", modules("durabatch/store"), ids=lambda p: p.name)
def test_store_knows_nothing_of_providers(path: Path) -> None:
    names = imports_of(path)
    assert not {
        n for n in names if n.startswith(("durabatch.providers", "temporalio", "activities", "workflows"))
    }


def test_nothing_imports_worker() -> None:
    offenders = [
        p
        for folder in ("durabatch", "workflows", "activities")
        for p in modules(folder)
        # the command line and the dev stack are entry points that launch the worker
        if "worker" in imports_of(p)
        and p.parts[-2:] not in {("durabatch", "cli.py"), ("durabatch", "devstack.py")}
    ]
    assert not offenders, offenders
