"""Typed readers for vendor field values (date-times, numbers) that fail with a ``MappingError`` naming the field."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors.mapping_errors import MappingError


def parse_datetime(value: Any, record: str, field: str) -> datetime | None:
    """ISO date-times as Jira (``2024-01-02T10:00:00.000+0000``) and Azure DevOps (``...Z``) send them."""
    if value in (None, ""):
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise MappingError(record, field, f"not a date-time: {value!r}") from None


def parse_number(value: Any, record: str, field: str, *, allow_negative: bool = True) -> float | None:
    """A finite number (estimates, backlog order); None when empty."""
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise MappingError(record, field, f"not a number: {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MappingError(record, field, f"not a number: {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise MappingError(record, field, f"not a finite number: {value!r}")
    if number < 0 and not allow_negative:
        raise MappingError(record, field, f"not a valid estimate: {value!r}")
    return number
