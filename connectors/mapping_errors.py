"""The error raised when one vendor record cannot be mapped to an ``Issue``."""

from __future__ import annotations


class MappingError(ValueError):
    """One record (issue, work item, CSV row) that cannot be mapped; names the record and the field."""

    def __init__(self, record: str, field: str, reason: str) -> None:
        self.record = record
        self.field = field
        self.reason = reason
        super().__init__(f"{record}: field {field!r}: {reason}")
