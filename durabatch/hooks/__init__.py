"""Provider webhooks in, workflow signals out: `durabatch hooks`, or `create_hooks_app()` mounted
in any ASGI server (docs/webhooks.md)."""

from __future__ import annotations

from durabatch.hooks.app import HooksApp, create_hooks_app
from durabatch.hooks.events import ProviderEvent, parse_event

__all__ = ["HooksApp", "ProviderEvent", "create_hooks_app", "parse_event"]
