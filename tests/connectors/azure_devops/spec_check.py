"""Validates the fake's traffic against Microsoft's WIT 7.1 Swagger definitions, with the documented drifts.

``../shared/specs/azure-devops-wit-7.1.json`` starts with a UTF-8 BOM; real traffic differs from it in
the ways ``load_spec_definitions`` and ``SpecValidator._check`` correct, each one explained.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema

from tests.shared_data import SHARED

SPEC = SHARED / "specs" / "azure-devops-wit-7.1.json"


def load_spec_definitions(path: Path) -> dict[str, Any]:
    """The spec's definitions, with the corrections real traffic needs (each one explained)."""
    spec = json.loads(path.read_text(encoding="utf-8-sig"))  # the file starts with a UTF-8 BOM
    definitions: dict[str, Any] = copy.deepcopy(spec["definitions"])
    # Spec drift 1: field values are declared as JSON objects, but real work items carry strings,
    # numbers and identity objects in ``fields`` (System.Title is a string); accept any JSON value.
    definitions["WorkItem"]["properties"]["fields"]["additionalProperties"] = {}
    # Spec drift 2: link attributes likewise hold booleans and strings (isLocked, name, comment).
    definitions["Link"]["properties"]["attributes"]["additionalProperties"] = {}
    return definitions


class SpecValidator:
    """Validates the fake's WIQL, batch and comment traffic against the vendor's Swagger definitions."""

    def __init__(self, definitions: dict[str, Any]) -> None:
        self.definitions = definitions
        self.violations: list[str] = []
        self.checked = 0
        self._validators: dict[str, jsonschema.Draft4Validator] = {}

    def _validate(self, definition: str, document: Any) -> None:
        validator = self._validators.get(definition)
        if validator is None:
            schema = {"$ref": f"#/definitions/{definition}", "definitions": self.definitions}
            validator = self._validators[definition] = jsonschema.Draft4Validator(schema)
        validator.validate(document)

    def check(self, endpoint: str, direction: str, document: Any) -> None:
        """Raise ``jsonschema.ValidationError`` when a document breaks the spec; remember it."""
        try:
            self._check(endpoint, direction, document)
        except jsonschema.ValidationError as exc:
            self.violations.append(f"{endpoint} {direction}: {exc.message}")
            raise
        self.checked += 1

    def _check(self, endpoint: str, direction: str, document: Any) -> None:
        if endpoint == "wiql":
            self._validate("Wiql" if direction == "request" else "WorkItemQueryResult", document)
            return
        if endpoint == "comment":
            # Spec drift 5: the 7.1 spec has no ``format`` parameter; the body is the same either way.
            self._validate("CommentCreate" if direction == "request" else "Comment", document)
            return
        if endpoint == "comments":
            self._validate("CommentList", document)
            return
        if endpoint == "workitemsbatch" and direction == "request":
            # Spec drift 3: the enums are lower case; the SDK sends "Relations" / "Omit" and the
            # service compares case-insensitively.
            normalised = dict(document)
            for key in ("$expand", "errorPolicy"):
                if isinstance(normalised.get(key), str):
                    normalised[key] = normalised[key].lower()
            self._validate("WorkItemBatchGetRequest", normalised)
            return
        if endpoint == "workitemsbatch":
            # Spec drift 4: the spec declares a bare array of WorkItem; real traffic (and the SDK's
            # _unwrap_collection) use the {count, value} wrapper. Check it, then each item.
            assert set(document) == {"count", "value"}, f"not a list wrapper: {sorted(document)}"
            assert document["count"] == len(document["value"])
            for item in document["value"]:
                if item is not None:  # errorPolicy=omit leaves null slots
                    self._validate("WorkItem", item)
