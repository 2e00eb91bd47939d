"""The one data converter used by worker, client and tests: pydantic models as readable JSON."""

from __future__ import annotations

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

__all__ = ["DATA_CONVERTER"]

DATA_CONVERTER: DataConverter = pydantic_data_converter
