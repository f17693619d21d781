"""The error raised when one vendor record cannot be mapped to an ``Issue``, and the guard that ensures it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class MappingError(ValueError):
    """One record (issue, work item, CSV row) that cannot be mapped; names the record and the field."""

    def __init__(self, record: str, field: str, reason: str) -> None:
        self.record = record
        self.field = field
        self.reason = reason
        super().__init__(f"{record}: field {field!r}: {reason}")


def guarded(mapper: Callable[[], T], raw: Any, id_field: str, what: str) -> T:
    """Run ``mapper``; a shape no explicit check foresaw becomes a ``MappingError`` naming the record, so a
    malformed record is reported (or skipped) instead of crashing the sync with a bare TypeError."""
    try:
        return mapper()
    except MappingError:
        raise
    except (AttributeError, TypeError, ValueError) as exc:
        record = str(raw.get(id_field) or f"<{what}>") if isinstance(raw, Mapping) else f"<{what}>"
        raise MappingError(record, "?", f"malformed {what}: {exc}") from None
