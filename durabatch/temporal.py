"""Connecting to Temporal and registering durabatch's search attributes."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client, Interceptor
from temporalio.common import SearchAttributeKey
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from durabatch.converter import DATA_CONVERTER
from durabatch.models import SEARCH_ATTRIBUTES
from durabatch.settings import Settings

__all__ = [
    "SearchAttributesMissing",
    "connect",
    "ensure_search_attributes",
    "search_attribute_keys",
    "tls_config",
]

logger = logging.getLogger(__name__)


class SearchAttributesMissing(RuntimeError):
    """The namespace (or durabatch's search attributes in it) is missing and we may not add them."""


def search_attribute_keys() -> list[SearchAttributeKey]:  # type: ignore[type-arg]
    keys: list[SearchAttributeKey] = []  # type: ignore[type-arg]
    for name, kind in SEARCH_ATTRIBUTES.items():
        keys.append(
            SearchAttributeKey.for_int(name) if kind == "int" else SearchAttributeKey.for_keyword(name)
        )
    return keys


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS to the frontend as the settings ask: off, the system roots, a private CA, and/or an
    mTLS client certificate (files read now, at connect)."""
    if not settings.temporal_uses_tls:
        return False
    cert, key, ca = settings.temporal_tls_cert, settings.temporal_tls_key, settings.temporal_tls_ca
    if cert is None and ca is None:
        return True
    return TLSConfig(
        server_root_ca_cert=ca.read_bytes() if ca else None,
        client_cert=cert.read_bytes() if cert else None,
        client_private_key=key.read_bytes() if key else None,
    )


async def connect(
    settings: Settings, *, interceptors: Sequence[Interceptor] = (), runtime: Runtime | None = None
) -> Client:
    api_key = settings.temporal_api_key
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=DATA_CONVERTER,
        interceptors=interceptors,
        runtime=runtime,
        tls=tls_config(settings),
        api_key=api_key.get_secret_value() if api_key else None,
    )


def _create_commands(namespace: str, missing: Sequence[str]) -> str:
    kinds = {"keyword": "Keyword", "int": "Int"}
    return "\n".join(
        f"  temporal operator search-attribute create --namespace {namespace} --name {n} --type {kinds[SEARCH_ATTRIBUTES[n]]}"
        for n in missing
    )


async def ensure_search_attributes(client: Client) -> list[str]:
    """Register any of durabatch's search attributes the namespace lacks; returns those added.

    Upserting an unregistered attribute leaves a workflow stuck, so the worker calls this at start.
    """
    namespace = client.namespace
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        present = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as exc:
        if exc.status == RPCStatusCode.PERMISSION_DENIED:
            # Temporal Cloud API keys may not read the operator service; there the attributes are
            # created with tcld or the Cloud UI, which deploy.md asks for.
            logger.warning(
                "may not list search attributes of namespace %r (%s); assuming they are registered",
                namespace,
                exc.message,
            )
            return []
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise SearchAttributesMissing(
                f"namespace {namespace!r} not found on the Temporal server: check "
                "DURABATCH_TEMPORAL_NAMESPACE, or create it with "
                f"`temporal operator namespace create --namespace {namespace}`"
            ) from exc
        # The time-skipping test server cannot list them; adding is idempotent enough there.
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        present = set()
    missing = [name for name in SEARCH_ATTRIBUTES if name not in present]
    if not missing:
        return []
    types = {
        "keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    }
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=namespace, search_attributes={n: types[SEARCH_ATTRIBUTES[n]] for n in missing}
            )
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.ALREADY_EXISTS:
            return []
        raise SearchAttributesMissing(
            f"namespace {namespace!r} lacks durabatch's search attributes {missing} and this worker may not "
            f"add them ({exc.message}). Ask an operator to run:\n{_create_commands(namespace, missing)}"
        ) from exc
    logger.info("registered search attributes", extra={"action": "register_search_attributes"})
    return missing
