"""A fake Azure DevOps organisation over real HTTP, answering what the ``azure-devops`` SDK calls.

It serves the SDK's discovery (``OPTIONS /{org}/_apis`` locations, ``/_apis/ResourceAreas``),
WIQL (a small WIQL evaluator, the 20,000-result cap and ``$top``), ``workitemsbatch`` (max 200 ids,
no ``fields`` with ``$expand``), work items by ids, comments (GET/POST/PATCH with ``format``),
process configuration and work item type states, with basic-auth PAT checks, api-version read from
the ``Accept`` header (or the query) and the ``{count, value}`` list wrapper real traffic uses.
Faults (429 / 503 / delayed 200 with ``Retry-After`` / dropped connections) are scripted per test.
Every request is recorded so tests and benchmarks can count them.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

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
AREA_WIT = "5264459e-e5e0-4bd8-b118-0985e68a4ec5"
AREA_WORK = "1d4f49f9-02b9-4e26-b826-2cdb6195f2a9"

# (id, area, resourceName, routeTemplate, resourceVersion, maxVersion)
_LOCATIONS = (
    (LOC_RESOURCE_AREAS, "Location", "ResourceAreas", "_apis/{resource}/{areaId}", 1, 7.1),
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

# What each process template declares: states and categories, effort/order fields, backlog types.
PROCESSES: Mapping[str, Mapping[str, Any]] = {
    "Agile": {
        "effort": "Microsoft.VSTS.Scheduling.StoryPoints",
        "order": "Microsoft.VSTS.Common.StackRank",
        "requirement": ["User Story"],
        "bug": ["Bug"],
        "task": ["Task"],
        "portfolio": ["Feature", "Epic"],
        "states": {
            "User Story": [
                ("New", "Proposed"),
                ("Active", "InProgress"),
                ("Resolved", "Resolved"),
                ("Closed", "Completed"),
                ("Removed", "Removed"),
            ],
            "Bug": [
                ("New", "Proposed"),
                ("Active", "InProgress"),
                ("Resolved", "Resolved"),
                ("Closed", "Completed"),
            ],
            "Task": [
                ("New", "Proposed"),
                ("Active", "InProgress"),
                ("Closed", "Completed"),
                ("Removed", "Removed"),
            ],
            "Feature": [
                ("New", "Proposed"),
                ("Active", "InProgress"),
                ("Resolved", "Resolved"),
                ("Closed", "Completed"),
                ("Removed", "Removed"),
            ],
            "Epic": [
                ("New", "Proposed"),
                ("Active", "InProgress"),
                ("Resolved", "Resolved"),
                ("Closed", "Completed"),
                ("Removed", "Removed"),
            ],
        },
    },
    "Scrum": {
        "effort": "Microsoft.VSTS.Scheduling.Effort",
        "order": "Microsoft.VSTS.Common.BacklogPriority",
        "requirement": ["Product Backlog Item"],
        "bug": ["Bug"],
        "task": ["Task"],
        "portfolio": ["Feature", "Epic"],
        "states": {
            "Product Backlog Item": [
                ("New", "Proposed"),
                ("Approved", "Proposed"),
                ("Committed", "InProgress"),
                ("Done", "Completed"),
                ("Removed", "Removed"),
            ],
            "Bug": [
                ("New", "Proposed"),
                ("Approved", "Proposed"),
                ("Committed", "InProgress"),
                ("Done", "Completed"),
                ("Removed", "Removed"),
            ],
            "Task": [
                ("To Do", "Proposed"),
                ("In Progress", "InProgress"),
                ("Done", "Completed"),
                ("Removed", "Removed"),
            ],
            "Feature": [
                ("New", "Proposed"),
                ("In Progress", "InProgress"),
                ("Done", "Completed"),
                ("Removed", "Removed"),
            ],
            "Epic": [
                ("New", "Proposed"),
                ("In Progress", "InProgress"),
                ("Done", "Completed"),
                ("Removed", "Removed"),
            ],
        },
    },
    "CMMI": {
        "effort": "Microsoft.VSTS.Scheduling.Size",
        "order": "Microsoft.VSTS.Common.StackRank",
        "requirement": ["Requirement"],
        "bug": ["Bug"],
        "task": ["Task"],
        "portfolio": ["Feature", "Epic"],
        "states": {
            "Requirement": [
                ("Proposed", "Proposed"),
                ("Active", "InProgress"),
                ("Resolved", "Resolved"),
                ("Closed", "Completed"),
            ],
            "Bug": [
                ("Proposed", "Proposed"),
                ("Active", "InProgress"),
                ("Resolved", "Resolved"),
                ("Closed", "Completed"),
            ],
            "Task": [
                ("Proposed", "Proposed"),
                ("Active", "InProgress"),
                ("Resolved", "Resolved"),
                ("Closed", "Completed"),
            ],
            "Feature": [
                ("Proposed", "Proposed"),
                ("Active", "InProgress"),
                ("Resolved", "Resolved"),
                ("Closed", "Completed"),
            ],
            "Epic": [
                ("Proposed", "Proposed"),
                ("Active", "InProgress"),
                ("Resolved", "Resolved"),
                ("Closed", "Completed"),
            ],
        },
    },
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
    ``drop_after`` processes the request and then closes the connection without answering.
    """

    path_contains: str
    method: str | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    message: str = ""
    times: int = 1
    drop_after: bool = False

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
            "System.CreatedDate": _iso(when - timedelta(days=10)),
            "System.ChangedDate": _iso(when),
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
        item["fields"]["System.ChangedDate"] = _iso(when)
        item["rev"] += 1

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
        context = _EvalContext(project.name if project else None, process, time_precision)
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
            "asOf": _iso(datetime.now(UTC)),
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
        now = _iso(datetime.now(UTC))
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
            return 200, {}, body
        if method == "POST" and not rest:
            if not isinstance(payload, Mapping) or not payload.get("text"):
                raise HttpError(400, "The comment text is required.")
            with self._lock:
                comment_id = self._next_comment_id
                self._next_comment_id += 1
            comment = {
                "workItemId": item_id,
                "id": comment_id,
                "version": 1,
                "text": payload["text"],
                "format": fmt or "html",
                "renderedText": payload["text"] if (fmt or "html") == "html" else f"<p>{payload['text']}</p>",
                "createdBy": {"displayName": "refinebot", "uniqueName": "refinebot@example.com"},
                "createdDate": now,
                "modifiedBy": {"displayName": "refinebot", "uniqueName": "refinebot@example.com"},
                "modifiedDate": now,
                "isDeleted": False,
                "url": f"{self._item_url(item_id)}/comments/{comment_id}",
            }
            thread.append(comment)
            return 200, {}, comment
        if method == "PATCH" and len(rest) == 1:
            comment_id = int(rest[0])
            for comment in thread:
                if comment["id"] == comment_id and not comment["isDeleted"]:
                    comment["text"] = (payload or {}).get("text", comment["text"])
                    comment["version"] += 1
                    comment["modifiedDate"] = now
                    if fmt:
                        comment["format"] = fmt
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
        except HttpError as exc:
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


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _field_sort_key(name: str, item: Mapping[str, Any]) -> tuple[int, Any]:
    return _sort_key(item["fields"].get(name))


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (1, "")
    if isinstance(value, int | float):
        return (0, float(value))
    return (0, str(value).lower()) if not isinstance(value, int | float) else (0, value)


# ----- a small WIQL evaluator ---------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<field>\[[^\]]+\])|(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<macro>@\w+)|(?P<op><>|>=|<=|=|<|>|\(|\)|,|\+|-)|(?P<word>[A-Za-z_]+))",
)


@dataclass(frozen=True)
class _EvalContext:
    project: str | None
    process: Mapping[str, Any] | None
    time_precision: bool


class WiqlError(HttpError):
    def __init__(self, message: str) -> None:
        super().__init__(400, f"VS402612: WIQL syntax error: {message}", "WiqlSyntaxException")


@dataclass(frozen=True)
class ParsedWiql:
    columns: list[str]
    where: _Node | None
    order_by: list[tuple[str, bool]]


class _Node:
    def evaluate(self, item: Mapping[str, Any], ctx: _EvalContext) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class _And(_Node):
    parts: tuple[_Node, ...]

    def evaluate(self, item: Mapping[str, Any], ctx: _EvalContext) -> bool:
        return all(p.evaluate(item, ctx) for p in self.parts)


@dataclass(frozen=True)
class _Or(_Node):
    parts: tuple[_Node, ...]

    def evaluate(self, item: Mapping[str, Any], ctx: _EvalContext) -> bool:
        return any(p.evaluate(item, ctx) for p in self.parts)


@dataclass(frozen=True)
class _Not(_Node):
    part: _Node

    def evaluate(self, item: Mapping[str, Any], ctx: _EvalContext) -> bool:
        return not self.part.evaluate(item, ctx)


@dataclass(frozen=True)
class _Predicate(_Node):
    field: str
    op: str
    values: tuple[Any, ...]

    def evaluate(self, item: Mapping[str, Any], ctx: _EvalContext) -> bool:
        actual = item["fields"].get(self.field)
        values = [_resolve(v, ctx) for v in self.values]
        if self.op == "in group":
            group = str(values[0])
            types = _group_types(group, ctx)
            return str(actual or "").lower() in {t.lower() for t in types}
        if self.op == "in":
            return any(_equal(actual, v) for v in values)
        if self.op == "under":
            text, prefix = str(actual or "").lower(), str(values[0]).lower()
            return text == prefix or text.startswith(prefix + "\\")
        if self.op == "contains":
            if self.field == "System.Tags":
                tags = {t.strip().lower() for t in str(actual or "").split(";")}
                return str(values[0]).lower() in tags
            return str(values[0]).lower() in str(actual or "").lower()
        value = values[0]
        if self.op == "=":
            return _equal(actual, value)
        if self.op == "<>":
            return not _equal(actual, value)
        if actual is None:
            return False
        left, right = _comparable(actual, value, ctx)
        outcomes = {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}
        return bool(outcomes[self.op])


def _group_types(group: str, ctx: _EvalContext) -> list[str]:
    process = ctx.process or {}
    key = {
        "microsoft.requirementcategory": "requirement",
        "microsoft.bugcategory": "bug",
        "microsoft.taskcategory": "task",
    }.get(group.lower())
    if key is None:
        raise WiqlError(f"unknown category {group!r}")
    return list(process.get(key, []))


def _resolve(value: Any, ctx: _EvalContext) -> Any:
    if isinstance(value, _Macro):
        if value.name == "@project":
            if ctx.project is None:
                raise WiqlError("@project needs a project in the route")
            return ctx.project
        if value.name == "@today":
            today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            return _iso(today + timedelta(days=value.offset))
        raise WiqlError(f"unsupported macro {value.name}")
    return value


def _equal(actual: Any, value: Any) -> bool:
    if isinstance(value, int | float) and not isinstance(actual, str):
        return actual is not None and float(actual) == float(value)
    return str(actual if actual is not None else "").lower() == str(value).lower()


def _parse_date(text: str, ctx: _EvalContext) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _comparable(actual: Any, value: Any, ctx: _EvalContext) -> tuple[Any, Any]:
    if isinstance(actual, int | float) and not isinstance(actual, bool):
        return float(actual), float(value)
    left_date = _parse_date(str(actual), ctx)
    right_date = _parse_date(str(value), ctx) if isinstance(value, str) else None
    if left_date is not None and right_date is not None:
        if not ctx.time_precision:
            if "T" in str(value) and not str(value).endswith("T00:00:00Z"):
                raise HttpError(
                    400,
                    "VS402625: Dates in WIQL queries may not contain a time unless timePrecision is set.",
                    "WiqlTimePrecisionException",
                )
            return left_date.date(), right_date.date()
        return left_date, right_date
    return str(actual).lower(), str(value).lower()


@dataclass(frozen=True)
class _Macro:
    name: str
    offset: int = 0


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        text = text.strip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if not match or match.end() == position:
                raise WiqlError(f"unexpected text at {position}: {text[position : position + 20]!r}")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
            while position < len(text) and text[position].isspace():
                position += 1
        self.at = 0

    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else ("eof", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.at += 1
        return token

    def word(self, *words: str) -> bool:
        if all(self.peek(i)[0] == "word" and self.peek(i)[1].lower() == w for i, w in enumerate(words)):
            self.at += len(words)
            return True
        return False

    def expect_word(self, word: str) -> None:
        if not self.word(word):
            raise WiqlError(f"expected {word.upper()}, found {self.peek()[1]!r}")

    def field(self) -> str:
        kind, value = self.take()
        if kind != "field":
            raise WiqlError(f"expected a [field], found {value!r}")
        return value[1:-1].strip()

    def value(self) -> Any:
        kind, value = self.take()
        if kind == "string":
            return value[1:-1].replace("''", "'")
        if kind == "number":
            return float(value) if "." in value else int(value)
        if kind == "macro":
            offset = 0
            if self.peek()[1] in ("+", "-") and self.peek(1)[0] == "number":
                sign = -1 if self.take()[1] == "-" else 1
                offset = sign * int(self.take()[1])
            return _Macro(value.lower(), offset)
        raise WiqlError(f"expected a value, found {value!r}")

    def parse(self) -> ParsedWiql:
        self.expect_word("select")
        columns = [self.field()]
        while self.peek()[1] == ",":
            self.take()
            columns.append(self.field())
        self.expect_word("from")
        _kind, source = self.take()
        if source.lower() != "workitems":
            raise WiqlError(f"only FROM WorkItems is supported by this fake, not {source!r}")
        where = None
        if self.word("where"):
            where = self.or_()
        order: list[tuple[str, bool]] = []
        if self.word("order", "by"):
            while True:
                name = self.field()
                descending = False
                if self.word("desc"):
                    descending = True
                else:
                    self.word("asc")
                order.append((name, descending))
                if self.peek()[1] != ",":
                    break
                self.take()
        if self.peek()[0] != "eof":
            raise WiqlError(f"unexpected {self.peek()[1]!r}")
        return ParsedWiql(columns, where, order)

    def or_(self) -> _Node:
        parts = [self.and_()]
        while self.word("or"):
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else _Or(tuple(parts))

    def and_(self) -> _Node:
        parts = [self.unary()]
        while self.word("and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else _And(tuple(parts))

    def unary(self) -> _Node:
        if self.word("not"):
            return _Not(self.unary())
        if self.peek()[1] == "(":
            self.take()
            node = self.or_()
            if self.take()[1] != ")":
                raise WiqlError("missing )")
            return node
        return self.predicate()

    def predicate(self) -> _Node:
        name = self.field()
        negate = self.word("not")
        if self.word("in", "group"):
            node: _Node = _Predicate(name, "in group", (self.value(),))
        elif self.word("in"):
            if self.take()[1] != "(":
                raise WiqlError("expected ( after IN")
            values = [self.value()]
            while self.peek()[1] == ",":
                self.take()
                values.append(self.value())
            if self.take()[1] != ")":
                raise WiqlError("missing ) after IN list")
            node = _Predicate(name, "in", tuple(values))
        elif self.word("under"):
            node = _Predicate(name, "under", (self.value(),))
        elif self.word("contains", "words") or self.word("contains"):
            node = _Predicate(name, "contains", (self.value(),))
        else:
            if negate:
                raise WiqlError("NOT must precede IN, UNDER or CONTAINS here")
            kind, op = self.take()
            if kind != "op" or op not in ("=", "<>", ">", ">=", "<", "<="):
                raise WiqlError(f"expected an operator after [{name}], found {op!r}")
            return _Predicate(name, op, (self.value(),))
        return _Not(node) if negate else node


def parse_wiql(text: str) -> ParsedWiql:
    """Parse the WIQL subset refinebot uses; raise a 400 ``WiqlError`` on anything else."""
    return _Parser(text).parse()
