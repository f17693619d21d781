"""A fake Azure DevOps organisation over real HTTP, answering what the ``azure-devops`` SDK calls.

It serves the SDK's discovery (``OPTIONS /{org}/_apis`` locations, ``/_apis/ResourceAreas``),
WIQL (a small WIQL evaluator, the 20,000-result cap and ``$top``), ``workitemsbatch`` (max 200 ids,
no ``fields`` with ``$expand``), work items by ids, comments (GET/POST/PATCH with ``format``),
process configuration and work item type states, with basic-auth PAT checks, api-version read from
the ``Accept`` header (or the query) and the ``{count, value}`` list wrapper real traffic uses.
Faults (429 / 503 / delayed 200 with ``Retry-After`` / dropped connections / silence) are scripted
per test.
Every request is recorded so tests and benchmarks can count them.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.ado_processes import PROCESSES
from tests.fakes.ado_wiql import EvalContext, WiqlError, iso, parse_wiql

WIQL_CAP = 20_000
BATCH_CAP = 200

# Location ids the SDK looks up in the OPTIONS answer (azure/devops/v7_1/*_client.py).
LOC_RESOURCE_AREAS = "e81700f7-3be2-46de-8624-2eb35882fcaa"
LOC_WIQL = "1a9c53f7-f243-4447-b110-35ef023636e4"
LOC_BATCH = "908509b6-4248-4475-a1cd-829139ba419f"
LOC_WORK_ITEMS = "72c7ddf8-2cdc-4f60-90cd-ab71c14a399b"
LOC_COMMENTS = "608aac0a-32e1-4493-a863-b9cf4566d257"
LOC_STATES = "7c9d7a76-4a09-43e8-b5df-bd792f4ac6aa"
LOC_PROCESS_CONFIG = "f901ba42-86d2-4b0c-89c1-3f86d06daa84"
LOC_CONNECTION_DATA = "00d9565f-ed9c-4a06-9a50-00e7896ccab4"
AREA_WIT = "5264459e-e5e0-4bd8-b118-0985e68a4ec5"
AREA_WORK = "1d4f49f9-02b9-4e26-b826-2cdb6195f2a9"

# (id, area, resourceName, routeTemplate, resourceVersion, maxVersion)
_LOCATIONS = (
    (LOC_RESOURCE_AREAS, "Location", "ResourceAreas", "_apis/{resource}/{areaId}", 1, 7.1),
    (LOC_CONNECTION_DATA, "Location", "ConnectionData", "_apis/{resource}", 1, 7.1),
    (LOC_WIQL, "wit", "wiql", "{project}/{team}/_apis/wit/{resource}/{id}", 2, 7.1),
    (LOC_BATCH, "wit", "workItemsBatch", "{project}/_apis/wit/{resource}", 1, 7.1),
    (LOC_WORK_ITEMS, "wit", "workItems", "{project}/_apis/wit/{resource}/{id}", 3, 7.1),
    (
        LOC_COMMENTS,
        "wit",
        "comments",
        "{project}/_apis/wit/workItems/{workItemId}/{resource}/{commentId}",
        4,
        7.1,
    ),
    (
        LOC_STATES,
        "wit",
        "workItemTypeStates",
        "{project}/_apis/wit/workitemtypes/{type}/states",
        1,
        7.1,
    ),
    (
        LOC_PROCESS_CONFIG,
        "work",
        "processconfiguration",
        "{project}/_apis/{area}/{resource}",
        1,
        7.1,
    ),
)

# The account the PAT belongs to (what _apis/connectionData names) and another person.
BOT = {
    "id": "7d1c0a53-0b5e-4c1e-9f0e-00000000b07",
    "displayName": "refinebot",
    "uniqueName": "refinebot@example.com",
}
PERSON = {
    "id": "2f9e4a61-3c8d-4b7a-a1e2-0000000000a7",
    "displayName": "Ana Lima",
    "uniqueName": "ana@example.com",
}


class HttpError(Exception):
    """An error answer: status, ADO-style ``{message, typeKey}`` body and extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        type_key: str = "",
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type_key = type_key
        self.headers = dict(headers or {})


@dataclass
class Fault:
    """A scripted misbehaviour for the next ``times`` requests matching method and path.

    ``status`` None means answer normally plus ``headers`` (e.g. a delayed 200 with Retry-After);
    ``drop_after`` processes the request and then closes the connection without answering;
    ``hang_seconds`` neither processes nor answers it: the connection stays silent that long, then
    closes (a server that stopped answering; recorded with status 0).
    """

    path_contains: str
    method: str | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    message: str = ""
    times: int = 1
    drop_after: bool = False
    hang_seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (
            self.times > 0
            and (self.method is None or self.method == method)
            and (self.path_contains.lower() in path.lower())
        )


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    query: Mapping[str, str]
    api_version: str | None
    body: Any
    status: int


@dataclass
class FakeProject:
    """A team project and the process template it uses."""

    name: str
    process: str = "Agile"
    exists: bool = True


ResponseValidator = Callable[[str, str, Any], None]  # (endpoint, "request"|"response", JSON) -> raises


class FakeAzureDevOps:
    """State of one fake organisation plus the HTTP server that serves it."""

    def __init__(
        self,
        org: str = "fabrikam",
        pat: str = "fake-pat",
        validator: ResponseValidator | None = None,
    ):
        self.org = org
        self.pat = pat
        self.validator = validator
        self.projects: dict[str, FakeProject] = {}
        self.items: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.markdown_comments = True
        self._lock = threading.Lock()
        self._next_id = 1
        self._next_comment_id = 1
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle ------------------------------------------------------------------------------
    def start(self) -> FakeAzureDevOps:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-ado", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def url(self) -> str:
        """The organisation URL a connector is configured with."""
        return f"{self.base}/{self.org}"

    # ----- seeding --------------------------------------------------------------------------------
    def add_project(self, name: str, process: str = "Agile") -> FakeProject:
        project = FakeProject(name, process)
        self.projects[name] = project
        return project

    def add_item(
        self,
        project: str,
        title: str,
        *,
        type: str | None = None,
        state: str | None = None,
        item_id: int | None = None,
        fields: Mapping[str, Any] | None = None,
        relations: Iterable[tuple[str, int]] = (),
        changed: datetime | None = None,
        raw_fields: Mapping[str, Any] | None = None,
        markdown_fields: Iterable[str] = (),
    ) -> int:
        """Add a work item; ``relations`` are (rel reference name, target id); returns its id.

        ``markdown_fields`` are multi-line fields stored as Markdown: the service then lists them in the work
        item's ``multilineFieldsFormat`` (values ``"markdown"``), which the SDK's model does not carry."""
        process = PROCESSES[self.projects[project].process]
        with self._lock:
            if item_id is None:
                item_id = self._next_id
            self._next_id = max(self._next_id, item_id + 1)
        work_type = type or process["requirement"][0]
        when = changed or datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
        all_fields: dict[str, Any] = {
            "System.Id": item_id,
            "System.AreaPath": project,
            "System.TeamProject": project,
            "System.IterationPath": project,
            "System.WorkItemType": work_type,
            "System.State": state or process["states"][work_type][0][0],
            "System.Reason": "New",
            "System.CreatedDate": iso(when - timedelta(days=10)),
            "System.ChangedDate": iso(when),
            "System.Title": title,
        }
        all_fields.update(fields or {})
        if raw_fields is not None:  # malformed items: exactly what the test wants on the wire
            all_fields = dict(raw_fields)
        self.items[item_id] = {
            "id": item_id,
            "rev": 1,
            "fields": all_fields,
            "multilineFieldsFormat": dict.fromkeys(markdown_fields, "markdown"),
            "relations": [
                {
                    "rel": rel,
                    "url": f"{self.url}/_apis/wit/workItems/{target}",
                    "attributes": {"isLocked": False, "name": rel.rsplit(".", 1)[-1]},
                }
                for rel, target in relations
            ],
        }
        return item_id

    def touch(self, item_id: int, when: datetime, **fields: Any) -> None:
        """Change a work item (fields, ChangedDate, rev), as an edit in the web UI would."""
        item = self.items[item_id]
        item["fields"].update(fields)
        item["fields"]["System.ChangedDate"] = iso(when)
        item["rev"] += 1

    def requests_since(self, mark: int) -> list[RecordedRequest]:
        """The requests recorded after the first ``mark`` ones (``mark = len(fake.requests)`` earlier)."""
        with self._lock:
            return list(self.requests[mark:])

    def count(self, method: str | None = None, path_contains: str = "") -> int:
        """How many recorded requests match."""
        return sum(
            1
            for r in list(self.requests)
            if (method is None or r.method == method) and path_contains.lower() in r.path.lower()
        )

    # ----- request handling -----------------------------------------------------------------------
    def handle(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        split = urlsplit(raw_path)
        path = split.path
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        segments = [unquote(s) for s in path.strip("/").split("/")]
        if not segments or segments[0].lower() != self.org.lower():
            raise HttpError(404, f"unknown organisation in {path}")
        if not _auth_ok(headers.get("Authorization", ""), self.pat):
            raise HttpError(401, "Unauthorized")
        rest = segments[1:]
        lowered = [s.lower() for s in rest]
        payload = json.loads(body) if body else None

        if method == "OPTIONS" and lowered == ["_apis"]:
            return 200, {}, self._locations()
        api_version = _api_version(headers, query)
        if api_version is None:
            raise HttpError(
                400, "VSS0001: No api-version was supplied for the request.", "VssInvalidApiVersion"
            )
        if method == "GET" and lowered[:2] == ["_apis", "resourceareas"]:
            return 200, {}, self._resource_areas()
        if method == "GET" and lowered == ["_apis", "connectiondata"]:
            return 200, {}, self._connection_data()
        if "_apis" not in lowered:
            raise HttpError(404, f"no route for {path}")
        at = lowered.index("_apis")
        project_name = "/".join(rest[:at][:1]) or None  # the team segment, if any, follows the project
        tail = lowered[at + 1 :]
        tail_raw = rest[at + 1 :]
        project = self._project(project_name) if project_name else None

        if tail == ["wit", "wiql"] and method == "POST":
            return 200, {}, self._wiql(project, payload, query)
        if tail == ["wit", "workitemsbatch"] and method == "POST":
            return 200, {}, self._batch(project, payload)
        if tail == ["wit", "workitems"] and method == "GET":
            return 200, {}, self._get_items(project, query)
        if len(tail) >= 4 and tail[:2] == ["wit", "workitems"] and tail[3] == "comments":
            return self._comments(method, int(tail_raw[2]), tail_raw[4:], payload, query, api_version)
        if (
            len(tail) == 4
            and tail[:2] == ["wit", "workitemtypes"]
            and tail[3] == "states"
            and method == "GET"
        ):
            return 200, {}, self._states(project, tail_raw[2])
        if tail == ["work", "processconfiguration"] and method == "GET":
            return 200, {}, self._process_configuration(project)
        raise HttpError(404, f"no route for {method} {path}")

    def _project(self, name: str) -> FakeProject:
        for project in self.projects.values():
            if project.name.lower() == name.lower() and project.exists:
                return project
        raise HttpError(
            404,
            f"TF200016: The following project does not exist: {name}. "
            "Verify that the name of the project is "
            "correct and that the project exists on the specified Azure DevOps Server.",
            "ProjectDoesNotExistWithNameException",
        )

    def _locations(self) -> dict[str, Any]:
        value = [
            {
                "id": loc_id,
                "area": area,
                "resourceName": resource,
                "routeTemplate": template,
                "resourceVersion": version,
                "minVersion": 1.0,
                "maxVersion": max_version,
                "releasedVersion": "7.1" if max_version >= 7.1 else "0.0",
            }
            for loc_id, area, resource, template, version, max_version in _LOCATIONS
        ]
        return {"count": len(value), "value": value}

    def _resource_areas(self) -> dict[str, Any]:
        areas = [
            {"id": AREA_WIT, "name": "wit", "locationUrl": f"{self.url}/"},
            {"id": AREA_WORK, "name": "work", "locationUrl": f"{self.url}/"},
        ]
        return {"count": len(areas), "value": areas}

    def _connection_data(self) -> dict[str, Any]:
        identity = {
            "id": BOT["id"],
            "descriptor": f"Microsoft.IdentityModel.Claims.ClaimsIdentity;{BOT['uniqueName']}",
            "providerDisplayName": BOT["displayName"],
            "isActive": True,
            "properties": {"Account": {"$type": "System.String", "$value": BOT["uniqueName"]}},
        }
        return {
            "authenticatedUser": identity,
            "authorizedUser": identity,
            "instanceId": "0b3e6a8f-5a1c-4d1e-8f3a-00000000f00d",
            "deploymentId": "0b3e6a8f-5a1c-4d1e-8f3a-00000000dep1",
            "deploymentType": "hosted",
            "locationServiceData": {"serviceOwner": "00025394-6065-48ca-87d9-7f5672854ef7"},
        }

    def add_comment(
        self, item_id: int, text: str, *, author: Mapping[str, str] = PERSON, fmt: str = "markdown"
    ) -> int:
        """A comment written straight into the thread (by a person, unless ``author`` says otherwise)."""
        return int(self._new_comment(item_id, text, fmt, author)["id"])

    def _new_comment(self, item_id: int, text: str, fmt: str, author: Mapping[str, str]) -> dict[str, Any]:
        with self._lock:
            comment_id = self._next_comment_id
            self._next_comment_id += 1
        now = iso(datetime.now(UTC))
        comment = {
            "workItemId": item_id,
            "id": comment_id,
            "version": 1,
            "text": text,
            "format": fmt,
            "renderedText": text if fmt == "html" else f"<p>{text}</p>",
            "createdBy": dict(author),
            "createdDate": now,
            "modifiedBy": dict(author),
            "modifiedDate": now,
            "isDeleted": False,
            "url": f"{self._item_url(item_id)}/comments/{comment_id}",
        }
        self.comments.setdefault(item_id, []).append(comment)
        self._bump(item_id, now)  # a comment is a new revision of the work item
        return comment

    def _bump(self, item_id: int, stamp: str) -> None:
        """What Azure DevOps does to a work item whose discussion changed: ChangedDate and rev move on."""
        with self._lock:
            item = self.items[item_id]
            item["fields"]["System.ChangedDate"] = stamp
            item["rev"] += 1

    def _item_url(self, item_id: int) -> str:
        return f"{self.url}/_apis/wit/workItems/{item_id}"

    def _wiql(self, project: FakeProject | None, payload: Any, query: Mapping[str, str]) -> dict[str, Any]:
        self._validate("wiql", "request", payload)
        if not isinstance(payload, Mapping) or not isinstance(payload.get("query"), str):
            raise HttpError(400, "VS402336: The WIQL query is missing.", "WiqlMissing")
        time_precision = query.get("timePrecision", "").lower() == "true"
        top = int(query["$top"]) if query.get("$top") else None
        parsed = parse_wiql(payload["query"])
        process = PROCESSES[project.process] if project else None
        context = EvalContext(project.name if project else None, process, time_precision)
        matched = [
            item
            for item in self.items.values()
            if parsed.where is None or parsed.where.evaluate(item, context)
        ]
        if (top is None or top > WIQL_CAP) and len(matched) > WIQL_CAP:
            raise HttpError(
                400,
                "VS402337: The number of work items returned exceeds the size limit "
                f"of {WIQL_CAP}. "
                "Change the query to return fewer items.",
                "WorkItemTrackingQueryResultSizeLimitExceededException",
            )
        for name, descending in reversed(parsed.order_by or [("System.Id", False)]):
            matched.sort(key=partial(_field_sort_key, name), reverse=descending)
        if top is not None:
            matched = matched[:top]
        result = {
            "queryType": "flat",
            "queryResultType": "workItem",
            "asOf": iso(datetime.now(UTC)),
            "columns": [
                {
                    "referenceName": name,
                    "name": name.rsplit(".", 1)[-1],
                    "url": f"{self.url}/_apis/wit/fields/{name}",
                }
                for name in parsed.columns
            ],
            "sortColumns": [
                {
                    "field": {
                        "referenceName": name,
                        "name": name,
                        "url": f"{self.url}/_apis/wit/fields/{name}",
                    },
                    "descending": descending,
                }
                for name, descending in parsed.order_by
            ],
            "workItems": [{"id": item["id"], "url": self._item_url(item["id"])} for item in matched],
        }
        self._validate("wiql", "response", result)
        return result

    def _render_item(self, item: Mapping[str, Any], fields: list[str] | None, expand: str) -> dict[str, Any]:
        selected = item["fields"] if not fields else {k: v for k, v in item["fields"].items() if k in fields}
        out: dict[str, Any] = {"id": item["id"], "rev": item["rev"], "fields": dict(selected)}
        if item.get("multilineFieldsFormat"):
            out["multilineFieldsFormat"] = dict(item["multilineFieldsFormat"])
        if expand in ("relations", "all") and item["relations"]:
            out["relations"] = [dict(r) for r in item["relations"]]
        out["url"] = self._item_url(item["id"])
        return out

    def _batch(self, project: FakeProject | None, payload: Any) -> dict[str, Any]:
        self._validate("workitemsbatch", "request", payload)
        if not isinstance(payload, Mapping) or not isinstance(payload.get("ids"), list):
            raise HttpError(400, "VS403471: The ids parameter is required.", "ArgumentNullException")
        ids = payload["ids"]
        if len(ids) > BATCH_CAP:
            raise HttpError(
                400,
                f"VS403474: You requested {len(ids)} work items which exceeds the limit of {BATCH_CAP}",
                "WorkItemTrackingLimitExceededException",
            )
        expand = str(payload.get("$expand") or "none").lower()
        fields = payload.get("fields")
        if fields and expand != "none":
            raise HttpError(
                400,
                "The expand parameter can not be used with the fields parameter.",
                "ConflictingParametersException",
            )
        omit = str(payload.get("errorPolicy") or "fail").lower() == "omit"
        value: list[Any] = []
        for item_id in ids:
            item = self.items.get(int(item_id))
            if item is None:
                if not omit:
                    raise HttpError(
                        404,
                        f"TF401232: Work item {item_id} does not exist.",
                        "WorkItemUnauthorizedAccessException",
                    )
                value.append(None)  # errorPolicy=omit keeps the slot, as the service does
                continue
            value.append(self._render_item(item, fields, expand))
        body = {"count": len(value), "value": value}
        self._validate("workitemsbatch", "response", body)
        return body

    def _get_items(self, project: FakeProject | None, query: Mapping[str, str]) -> dict[str, Any]:
        ids = [int(i) for i in query.get("ids", "").split(",") if i]
        if len(ids) > BATCH_CAP:
            raise HttpError(
                400,
                f"VS403474: You requested {len(ids)} work items which exceeds the limit of {BATCH_CAP}",
            )
        fields = [f for f in query.get("fields", "").split(",") if f] or None
        expand = query.get("$expand", "none").lower()
        if fields and expand != "none":
            raise HttpError(400, "The expand parameter can not be used with the fields parameter.")
        value = [self._render_item(self.items[i], fields, expand) for i in ids if i in self.items]
        return {"count": len(value), "value": value}

    def _comments(
        self,
        method: str,
        item_id: int,
        rest: list[str],
        payload: Any,
        query: Mapping[str, str],
        api_version: str,
    ) -> tuple[int, dict[str, str], Any]:
        if item_id not in self.items:
            raise HttpError(404, f"TF401232: Work item {item_id} does not exist.")
        thread = self.comments.setdefault(item_id, [])
        fmt = query.get("format")
        if fmt is not None and (not self.markdown_comments or not api_version.startswith("7.1")):
            raise HttpError(400, "The request parameter 'format' is not supported by this server version.")
        now = iso(datetime.now(UTC))
        if method == "GET" and not rest:
            top = int(query.get("$top") or 200)
            start = int(query.get("continuationToken") or 0)
            live = [c for c in thread if not c["isDeleted"]]
            page = live[start : start + top]
            body: dict[str, Any] = {
                "totalCount": len(live),
                "count": len(page),
                "comments": page,
                "url": f"{self._item_url(item_id)}/comments",
            }
            if start + top < len(live):
                body["continuationToken"] = str(start + top)
                body["nextPage"] = f"{self._item_url(item_id)}/comments?continuationToken={start + top}"
            self._validate("comments", "response", body)
            return 200, {}, body
        if method == "GET" and len(rest) == 1:
            for comment in thread:
                if str(comment["id"]) == rest[0] and not comment["isDeleted"]:
                    self._validate("comment", "response", comment)
                    return 200, {}, comment
            raise HttpError(404, f"VS402617: Comment {rest[0]} does not exist on work item {item_id}.")
        if method == "POST" and not rest:
            self._validate("comment", "request", payload)
            if not isinstance(payload, Mapping) or not payload.get("text"):
                raise HttpError(400, "The comment text is required.")
            # Whoever holds the PAT is the author: the bot's account.
            comment = self._new_comment(item_id, payload["text"], fmt or "html", BOT)
            self._validate("comment", "response", comment)
            return 200, {}, comment
        if method == "PATCH" and len(rest) == 1:
            comment_id = int(rest[0])
            for comment in thread:
                if comment["id"] == comment_id and not comment["isDeleted"]:
                    comment["text"] = (payload or {}).get("text", comment["text"])
                    comment["version"] += 1
                    comment["modifiedDate"] = now
                    comment["modifiedBy"] = dict(BOT)
                    if fmt:
                        comment["format"] = fmt
                    self._bump(item_id, now)
                    return 200, {}, comment
            raise HttpError(404, f"VS402617: Comment {comment_id} does not exist on work item {item_id}.")
        raise HttpError(405, "method not allowed")

    def _states(self, project: FakeProject | None, work_type: str) -> dict[str, Any]:
        if project is None:
            raise HttpError(404, "project required")
        states = PROCESSES[project.process]["states"]
        for name, values in states.items():
            if name.lower() == work_type.lower():
                value = [{"name": s, "color": "b2b2b2", "category": c} for s, c in values]
                return {"count": len(value), "value": value}
        raise HttpError(
            404,
            f"VS402323: Work item type {work_type} does not exist.",
            "WorkItemTypeNotFoundException",
        )

    def _process_configuration(self, project: FakeProject | None) -> dict[str, Any]:
        if project is None:
            raise HttpError(404, "project required")
        process = PROCESSES[project.process]

        def category(name: str, ref: str, types: list[str]) -> dict[str, Any]:
            return {
                "name": name,
                "referenceName": ref,
                "workItemTypes": [
                    {"name": t, "url": f"{self.url}/_apis/wit/workItemTypes/{t}"} for t in types
                ],
            }

        def field_ref(ref: str) -> dict[str, Any]:
            return {
                "referenceName": ref,
                "name": ref.rsplit(".", 1)[-1],
                "url": f"{self.url}/_apis/wit/fields/{ref}",
            }

        return {
            "taskBacklog": category("Tasks", "Microsoft.TaskCategory", process["task"]),
            "requirementBacklog": category(
                "Stories", "Microsoft.RequirementCategory", process["requirement"]
            ),
            "portfolioBacklogs": [
                category(t + "s", f"Microsoft.{t}Category", [t]) for t in process["portfolio"]
            ],
            "bugWorkItems": category("Bug Category", "Microsoft.BugCategory", process["bug"]),
            "typeFields": {
                "Effort": field_ref(process["effort"]),
                "Order": field_ref(process["order"]),
                "Team": field_ref("System.AreaPath"),
                "Activity": field_ref("Microsoft.VSTS.Common.Activity"),
                "RemainingWork": field_ref("Microsoft.VSTS.Scheduling.RemainingWork"),
            },
            "url": f"{self.url}/{project.name}/_apis/work/processconfiguration",
        }

    def _validate(self, endpoint: str, direction: str, document: Any) -> None:
        if self.validator is not None:
            self.validator(endpoint, direction, document)

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    return fault
        return None

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeAzureDevOps
    protocol_version = "HTTP/1.1"  # keep-alive, as the real service; the SDK's session reuses connections

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return

    def _serve(self) -> None:
        fake = self.server_fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = dict(self.headers.items())
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        fault = fake.take_fault(self.command, split.path)
        if fault is not None and fault.hang_seconds > 0:
            fake.record(
                RecordedRequest(
                    self.command,
                    unquote(split.path),
                    query,
                    _api_version(headers, query),
                    _safe_json(body),
                    0,
                )
            )
            time.sleep(fault.hang_seconds)
            self.close_connection = True
            return
        extra: dict[str, str] = {}
        try:
            if fault is not None and fault.status is not None:
                raise HttpError(
                    fault.status,
                    fault.message or _fault_message(fault.status),
                    headers=fault.headers,
                )
            status, extra, payload = fake.handle(self.command, self.path, headers, body)
            if fault is not None:
                extra = {**extra, **fault.headers}
        except (HttpError, WiqlError) as exc:
            status, extra = exc.status, exc.headers
            payload = {
                "$id": "1",
                "innerException": None,
                "message": exc.message,
                "typeName": exc.type_key,
                "typeKey": exc.type_key,
                "errorCode": 0,
                "eventId": 3000,
            }
            if exc.status == 401:
                payload = None
        fake.record(
            RecordedRequest(
                self.command,
                unquote(split.path),
                query,
                _api_version(headers, query),
                _safe_json(body),
                status,
            )
        )
        if fault is not None and fault.drop_after:
            # The work is done (the comment exists) but the answer never arrives.
            self.close_connection = True
            return
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header(
            "Content-Type",
            "application/json; charset=utf-8" if payload is not None else "text/plain",
        )
        self.send_header("Content-Length", str(len(data)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_OPTIONS = do_DELETE = _serve  # noqa: N815


def _fault_message(status: int) -> str:
    if status == 429:
        return (
            "TF400733: The request has been canceled: Request was blocked due to "
            "exceeding usage of resource "
            "'WorkItemTracking' in namespace 'User'."
        )
    if status == 503:
        return "TF400324: Team Foundation services are not available from server."
    return f"fault {status}"


def _safe_json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return body.decode(errors="replace")


def _auth_ok(header: str, pat: str) -> bool:
    if not header.startswith("Basic "):
        return False
    try:
        _user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return False
    return secret == pat


def _api_version(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    if query.get("api-version"):
        return query["api-version"]
    accept = headers.get("Accept", "")
    found = re.search(r"api-version=([0-9.]+(?:-preview(?:\.\d+)?)?)", accept)
    return found.group(1) if found else None


def _field_sort_key(name: str, item: Mapping[str, Any]) -> tuple[int, Any]:
    return _sort_key(item["fields"].get(name))


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (1, "")
    if isinstance(value, int | float):
        return (0, float(value))
    return (0, str(value).lower()) if not isinstance(value, int | float) else (0, value)


def of_kind(requests: Iterable[RecordedRequest], method: str, fragment: str) -> list[RecordedRequest]:
    """The recorded requests with ``method`` whose path contains ``fragment`` (case-insensitively)."""
    return [r for r in requests if r.method == method and fragment.lower() in r.path.lower()]
