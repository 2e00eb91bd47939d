"""The one data converter used by worker, client and tests: pydantic models as readable JSON.

Decoding is lenient where pydantic's JSON parser is stricter than JSON as clients send it: a
payload holding `NaN`, `Infinity`, `1e400` or a lone surrogate escape (`"\\ud800"`), which another
SDK or `temporal workflow start --input` may send, is parsed with Python's `json` instead. An input
that does not decode fails the workflow task before any workflow code runs, over and over; decoded,
it reaches the workflow's contract, which refuses it naming the field.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)

__all__ = ["DATA_CONVERTER", "LenientJSONPayloadConverter"]


class LenientJSONPayloadConverter(PydanticJSONPlainPayloadConverter):
    """pydantic's JSON converter, falling back to Python's `json` for JSON pydantic cannot parse."""

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        try:
            return super().from_payload(payload, type_hint)
        except ValidationError as exc:
            if not any(e["type"] == "json_invalid" for e in exc.errors()):
                raise
            try:
                value = json.loads(payload.data)
            except ValueError:
                raise exc from None
            return TypeAdapter(Any if type_hint is None else type_hint).validate_python(value)


class _PayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        super().__init__(
            *(
                LenientJSONPayloadConverter() if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


DATA_CONVERTER: DataConverter = DataConverter(payload_converter_class=_PayloadConverter)
