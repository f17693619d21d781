"""Read the bulk endpoints' JSON (``workitemsbatch``, WIQL) as the service sent it, through the SDK's request path.

The SDK's ``get_work_items_batch`` and ``query_by_wiql`` turn every answer into msrest models: a
10,000-item fetch spent about 60 % of its time there (``Deserializer.deserialize_data`` walks every
field value and ``eval``s each type name), only for ``search.py`` to turn the models back into the
JSON shape ``connectors.ado_json`` maps. These functions send the very request the SDK method sends,
through the same client's ``_send`` (credentials, OPTIONS/ResourceAreas location lookup, api-version
negotiation, session and fed-auth headers, the guard's response hooks, ``_handle_error``'s
exceptions), and keep the body's JSON as it is: nothing the model would drop
(``multilineFieldsFormat``, ``_links``) is lost, and errors still reach the guard as the SDK's
exceptions, so they map to the same messages.

``_send`` is the SDK's generated clients' one request method (azure-devops 7.1.0b4, pinned);
``tests/connectors/azure_devops/test_wire_json.py`` checks each request on the wire equals the SDK
method's.
"""

from __future__ import annotations

import json
from typing import Any

# From azure/devops/v7_1/work_item_tracking/work_item_tracking_client.py: get_work_items_batch, query_by_wiql.
BATCH_LOCATION_ID = "908509b6-4248-4475-a1cd-829139ba419f"
BATCH_VERSION = "7.1-preview.1"
WIQL_LOCATION_ID = "1a9c53f7-f243-4447-b110-35ef023636e4"
WIQL_VERSION = "7.1-preview.2"


def get_work_items_batch_json(wit: Any, request: Any, project: str | None = None) -> list[dict[str, Any]]:
    """``wit.get_work_items_batch(request, project)`` without the models: the items as JSON objects.

    Slots the service leaves empty (``errorPolicy`` Omit, an id that does not exist) are dropped.
    Raises the SDK's ``DeserializationError`` for a 200 that is not a batch answer (a login page, a
    proxy), which the guard reports as "not Azure DevOps JSON".
    """
    route_values: dict[str, str] = {}
    if project is not None:
        route_values["project"] = wit._serialize.url("project", project, "str")
    response = wit._send(
        http_method="POST",
        location_id=BATCH_LOCATION_ID,
        version=BATCH_VERSION,
        route_values=route_values,
        content=wit._serialize.body(request, "WorkItemBatchGetRequest"),
    )
    return work_items_of(response.content)


def query_ids_json(
    wit: Any, wiql: Any, project: str, *, time_precision: bool | None = None, top: int | None = None
) -> list[int]:
    """``wit.query_by_wiql(wiql, TeamContext(project=project), time_precision, top)``'s work item ids."""
    query_parameters: dict[str, Any] = {}
    if time_precision is not None:
        query_parameters["timePrecision"] = wit._serialize.query("time_precision", time_precision, "bool")
    if top is not None:
        query_parameters["$top"] = wit._serialize.query("top", top, "int")
    response = wit._send(
        http_method="POST",
        location_id=WIQL_LOCATION_ID,
        version=WIQL_VERSION,
        route_values={"project": wit._serialize.url("project", project, "string")},
        query_parameters=query_parameters,
        content=wit._serialize.body(wiql, "Wiql"),
    )
    return work_item_ids_of(response.content)


def _json(body: bytes, what: str) -> Any:
    from azure.core.exceptions import DeserializationError

    try:
        return json.loads(body)
    except ValueError:
        raise DeserializationError(f"the {what} answer is not JSON") from None


def work_items_of(body: bytes) -> list[dict[str, Any]]:
    """The work items of a batch answer's ``{"count", "value": [...]}`` body, empty slots dropped."""
    from azure.core.exceptions import DeserializationError

    data = _json(body, "work items batch")
    value = data.get("value") if isinstance(data, dict) else None
    if not isinstance(value, list):
        raise DeserializationError("the work items batch answer has no 'value' list")
    items: list[dict[str, Any]] = []
    for item in value:
        if item is None:
            continue
        if not isinstance(item, dict) or "id" not in item:
            raise DeserializationError("the work items batch answer holds something that is not a work item")
        items.append(item)
    return items


def work_item_ids_of(body: bytes) -> list[int]:
    """The ids of a flat WIQL answer's ``workItems`` references, in the order the service gave them."""
    from azure.core.exceptions import DeserializationError

    data = _json(body, "WIQL")
    references = data.get("workItems") if isinstance(data, dict) else None
    if not isinstance(references, list):
        raise DeserializationError("the WIQL answer has no 'workItems' list")
    try:
        return [int(reference["id"]) for reference in references]
    except (TypeError, KeyError, ValueError):
        raise DeserializationError("the WIQL answer holds a reference without a numeric id") from None
