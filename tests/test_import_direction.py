"""The import direction of docs/architecture.md: who may import what, followed transitively.

Every first-party module is parsed once; a module's reach is everything it imports, directly or
through other first-party modules (third-party packages are not followed, only named). Imports inside
functions count too: they run sooner or later, in the same process.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("durabatch", "workflows", "activities", "worker")
LIBRARY_FOLDERS = ("durabatch", "workflows", "activities")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    found = {module_name(p): p for folder in LIBRARY_FOLDERS for p in (ROOT / folder).rglob("*.py")}
    found["worker"] = ROOT / "worker.py"
    return found


MODULES = all_modules()


def resolve(name: str) -> str | None:
    """The first-party module an import names (`a.b.c` may be module `a.b` with attribute `c`)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


@cache
def direct_imports(module: str) -> frozenset[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # `from pkg import mod` imports the submodule when there is one
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)
    # importing a.b.c runs a/__init__ and a/b/__init__ first
    parents = {p for name in found if (r := resolve(name)) for p in _parents(r)}
    return frozenset(found | parents)


def _parents(module: str) -> Iterable[str]:
    parts = module.split(".")
    for i in range(1, len(parts)):
        if ".".join(parts[:i]) in MODULES:
            yield ".".join(parts[:i])


@cache
def reach(module: str) -> frozenset[str]:
    """Every name imported by `module`, directly or through first-party modules."""
    seen: set[str] = set()
    todo = [module]
    visited: set[str] = set()
    while todo:
        current = todo.pop()
        if current in visited:
            continue
        visited.add(current)
        for name in direct_imports(current):
            seen.add(name)
            target = resolve(name)
            if target is not None and target not in visited:
                todo.append(target)
    return frozenset(seen)


def forbidden_reach(module: str, prefixes: tuple[str, ...]) -> set[str]:
    return {n for n in reach(module) if any(n == p or n.startswith(p + ".") for p in prefixes)}


def in_folder(folder: str) -> list[str]:
    prefix = folder.replace("/", ".")
    return sorted(m for m in MODULES if m == prefix or m.startswith(prefix + "."))


#: What workflow-importable library modules never reach.
PURE = (
    "temporalio",
    "httpx",
    "asyncpg",
    "durabatch.store",
    "durabatch.providers",
    "activities",
    "workflows",
    "worker",
)

#: The rules, one per folder: the modules under each prefix must never reach these names.
RULES: dict[str, tuple[str, ...]] = {
    # deterministic code: the models and other workflow modules only
    "workflows": (
        "activities",
        "worker",
        "durabatch.store",
        "durabatch.providers",
        "durabatch.client",
        "durabatch.service",
        "durabatch.telemetry",
        "httpx",
        "asyncpg",
        "aiohttp",
    ),
    # thin adapters between Temporal and the library: never the workflows or the entry points
    "activities": ("workflows", "worker", "durabatch.service", "durabatch.cli", "durabatch.devstack"),
    # providers know nothing of Temporal, the store or the layers above
    "durabatch.providers": ("temporalio", "asyncpg", "durabatch.store", "activities", "workflows", "worker"),
    # the store knows nothing of providers' wire formats or Temporal
    "durabatch.store": ("temporalio", "httpx", "durabatch.providers", "activities", "workflows", "worker"),
    # the emulator is a stand-alone server: none of durabatch's own machinery
    "durabatch.emulator": (
        "temporalio",
        "asyncpg",
        "durabatch.store",
        "durabatch.providers",
        "activities",
        "workflows",
        "worker",
    ),
    # models and the contract are imported by workflow code: pydantic and the standard library only
    "durabatch.models": PURE,
    "durabatch.contract": PURE,
    "durabatch.budget": PURE,
    "durabatch.vocabulary": PURE,
    "durabatch.failures": PURE,
    "durabatch.contract_checks": PURE,
    "durabatch.contract_jobs": PURE,
    # the webhook receiver: the store and Temporal's client, none of the worker's layers
    "durabatch.hooks": ("workflows", "activities", "worker", "durabatch.providers", "durabatch.service"),
    "durabatch.admission": PURE,
    # the activities' interface is imported by workflow code and by the activities alike
    "durabatch.activity_api": tuple(p for p in PURE if p != "temporalio"),
    "durabatch.activity_io": PURE,
    "durabatch.telemetry.traces": ("temporalio", "asyncpg", "httpx", "activities", "workflows", "worker"),
    "durabatch.telemetry.logs": ("asyncpg", "httpx", "activities", "workflows", "worker"),
}

CASES = [(prefix, module) for prefix in RULES for module in in_folder(prefix)]

#: What the modules under each prefix never import themselves (they may reach it through the layer
#: that owns it): activities and workflows speak the store's errors and types, never the driver's.
DIRECT_RULES: dict[str, tuple[str, ...]] = {
    "activities": ("asyncpg",),
    "workflows": ("asyncpg",),
}

DIRECT_CASES = [(prefix, module) for prefix in DIRECT_RULES for module in in_folder(prefix)]


@pytest.mark.parametrize(("prefix", "module"), CASES, ids=[m for _, m in CASES])
def test_module_keeps_to_its_layer(prefix: str, module: str) -> None:
    bad = forbidden_reach(module, RULES[prefix])
    assert not bad, f"{module} reaches {sorted(bad)} (rule for {prefix})"


@pytest.mark.parametrize(("prefix", "module"), DIRECT_CASES, ids=[m for _, m in DIRECT_CASES])
def test_module_never_imports_the_driver_itself(prefix: str, module: str) -> None:
    bad = {
        n
        for n in direct_imports(module)
        if any(n == p or n.startswith(p + ".") for p in DIRECT_RULES[prefix])
    }
    assert not bad, f"{module} imports {sorted(bad)} itself (rule for {prefix})"


def test_the_direct_rule_sees_an_import_of_the_driver() -> None:
    """The direct rule can fail: the store's own modules import asyncpg, and it sees that."""
    assert "asyncpg" in direct_imports("durabatch.store.pool")


def test_every_library_folder_has_a_rule() -> None:
    """A new folder under the library gets a rule of its own, or is named here as free of one."""
    # the command line, the client and the service are the top of the stack: they may reach anything
    top = {"durabatch.cli", "durabatch.devstack", "durabatch.demo", "durabatch.service", "durabatch.client"}
    packages = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    uncovered = {
        m for m in packages if m not in top and not any(m == r or m.startswith(r + ".") for r in RULES)
    } - {"durabatch", "durabatch.telemetry"}
    assert not uncovered, f"packages without an import rule: {sorted(uncovered)}"


def test_only_the_service_assembles_the_layers() -> None:
    """Within the library, only `durabatch.service` (and the entry points above it) reach the
    workflows and activities; nothing at all imports the `worker.py` entry point."""
    top = ("durabatch.cli", "durabatch.devstack", "durabatch.demo", "durabatch.service")
    offenders = {
        m
        for m in in_folder("durabatch")
        if not m.startswith(top) and forbidden_reach(m, ("workflows", "activities"))
    }
    assert not offenders, sorted(offenders)
    importing_worker = {m for m in MODULES if m != "worker" and "worker" in reach(m)}
    assert not importing_worker, sorted(importing_worker)


def test_the_rules_see_through_one_module_to_the_next() -> None:
    """The checker follows imports transitively (the walls had holes when it read direct ones only)."""
    assert "durabatch.telemetry.traces" in reach("durabatch.providers.http")
    assert "opentelemetry" in {n.split(".")[0] for n in reach("durabatch.providers.http")}
