"""The activities' interface (durabatch.activity_api) and the worker's implementations agree: the
workflow calls each stub by its name and decodes the stub's return type, so an implementation with
another name or other types would fail at run time, not here."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast, get_type_hints

import pytest
from temporalio import activity

from activities import ActivityDeps, all_activities
from durabatch import activity_api as api

#: activities the worker registers that the batch workflow never calls
NOT_IN_THE_INTERFACE = {"smoke_write_and_read"}


def _stubs() -> dict[str, Callable[..., Any]]:
    return {
        name: fn
        for name, fn in vars(api).items()
        if inspect.iscoroutinefunction(fn) and getattr(fn, "__module__", "") == api.__name__
    }


def _registered() -> dict[str, Callable[..., Any]]:
    # The deps are never used: only the bound methods' definitions are read.
    deps = cast(ActivityDeps, SimpleNamespace(pool=None))
    found: dict[str, Callable[..., Any]] = {}
    for fn in all_activities(deps):
        defn = activity._Definition.must_from_callable(fn)
        assert defn.name is not None
        found[defn.name] = fn
    return found


def _types(fn: Callable[..., Any]) -> tuple[list[Any], Any]:
    hints = get_type_hints(fn)
    params = [hints[p] for p in inspect.signature(fn).parameters if p != "self"]
    return params, hints.get("return")


def test_every_stub_is_registered_under_its_name() -> None:
    registered = _registered()
    missing = set(_stubs()) - set(registered)
    assert not missing, f"stubs with no implementation: {sorted(missing)}"
    unknown = set(registered) - set(_stubs()) - NOT_IN_THE_INTERFACE
    assert not unknown, f"registered activities without a stub: {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(_stubs()))
def test_implementation_has_the_stubs_types(name: str) -> None:
    assert _types(_registered()[name]) == _types(_stubs()[name])


@pytest.mark.parametrize("name", sorted(_stubs()))
async def test_a_stub_never_runs(name: str) -> None:
    stub = _stubs()[name]
    with pytest.raises(NotImplementedError, match="interface stub"):
        await stub(None)
