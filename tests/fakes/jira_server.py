"""A fake Jira (Cloud and Data Center) over real HTTP on 127.0.0.1, in Jira's published shapes.

One server hosts many independent sites, each under its own path prefix
(``http://127.0.0.1:PORT/s3``), so a test session starts the server once and every test gets a fresh
site. A site implements serverInfo, ``/field``, ``search/jql`` (Cloud: ``nextPageToken``/``isLast``,
410 for the removed ``/search``), ``/rest/api/2/search`` (Data Center: ``startAt``/``total`` with a
server-side page cap), Agile board configuration, comments with properties, and fault injection
(status codes with headers, a dropped connection after the work is done, or a connection left silent
as a server that stopped answering would). Every exchange is
recorded so tests can count requests and validate responses against the vendor spec.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes import jira_jql as fake_jql

JIRA_TIME = "%Y-%m-%dT%H:%M:%S"
ISSUE_EXPAND = "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"


def jira_time(when: datetime) -> str:
    """A time as Jira writes it: milliseconds and the offset (two writes a second apart stay apart)."""
    utc = when.astimezone(UTC)
    return f"{utc.strftime(JIRA_TIME)}.{utc.microsecond // 1000:03d}+0000"


@dataclass
class Fault:
    """A planned failure: answer ``status``, or do the work and then drop the connection."""

    method: str
    path: re.Pattern[str]
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    times: int = 1
    drop_after_commit: bool = False
    # Do the work, then answer ``status`` anyway (a gateway that timed out after the server committed).
    fail_after_commit: bool = False
    # Neither do the work nor answer: stay silent this long, then close (recorded with status None).
    hang_seconds: float = 0.0


@dataclass(frozen=True)
class Exchange:
    """One recorded request and the answer given (None for a dropped connection)."""

    method: str
    path: str  # without the site prefix, e.g. /rest/api/3/search/jql
    query: dict[str, list[str]]
    body: Any
    status: int | None
    response: Any
    response_headers: dict[str, str]


STATUS_CATEGORIES = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {
        "id": 4,
        "key": "indeterminate",
        "colorName": "yellow",
        "name": "In Progress",
    },
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}


@dataclass
class FieldIds:
    """Which custom field ids a site uses; ``None`` leaves the field off the site."""

    story_points: str | None = "customfield_10016"
    story_points_type: str = "com.pyxis.greenhopper.jira:jsw-story-points"
    story_points_name: str = "Story point estimate"
    sprint: str | None = "customfield_10020"
    rank: str | None = "customfield_10019"
    acceptance_criteria: str | None = None
    epic_link: str | None = None
    # A decoy every Advanced Roadmaps site has: a number that must not be read as the estimate.
    original_points: str | None = "customfield_10500"


class Site:
    """One Jira site: its data, its credentials, its faults and its request log."""

    def __init__(
        self,
        server: FakeJiraServer,
        prefix: str,
        *,
        cloud: bool,
        email: str = "bot@example.com",
        token: str = "cloud-api-token-123",
        pat: str = "dc-personal-access-token-456",
        dc_password: str | None = None,
        fields: FieldIds | None = None,
        dc_page_cap: int = 1000,
        cloud_page_cap: int = 100,
        cloud_stamp_page_cap: int = 5000,
    ) -> None:
        self.server = server
        self.prefix = prefix
        self.cloud = cloud
        self.email = email
        self.token = token
        self.pat = pat
        # Data Center basic auth (username + password); off unless set, as on Jira 11.
        self.dc_user = "alice"
        self.dc_password = dc_password
        self.field_ids = fields or FieldIds()
        self.dc_page_cap = dc_page_cap
        self.max_result_window = 10_000  # Data Center: startAt + maxResults beyond this fails
        self.cloud_page_cap = cloud_page_cap
        # Cloud pages asking for ids, keys and 'updated' only. The spec promises its biggest pages
        # (5000) for id/key alone and fewer "where a large number of fields" are asked; what a page
        # with one small field more holds is not published. Default: as many as id/key pages; tests
        # set 100 (a full-field page) to check that the connector notices and falls back.
        self.cloud_stamp_page_cap = cloud_stamp_page_cap
        self.issues: dict[str, dict[str, Any]] = {}
        self.boards: dict[int, dict[str, Any]] = {}
        self.comments: dict[str, list[dict[str, Any]]] = {}
        self.comment_properties: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self.log: list[Exchange] = []
        self.lock = threading.RLock()
        # A token remembers its result set, as Jira's do, so later pages need no new search.
        self._tokens: dict[str, tuple[list[dict[str, Any]], int]] = {}
        self._ids = itertools.count(10001)
        # Runs before each search is answered: a user changing issues between two pages.
        self.before_search: Callable[[dict[str, list[str]]], None] | None = None
        self._comment_ids = itertools.count(20001)

    # --- setup helpers -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{self.server.base_url}{self.prefix}"

    @property
    def api(self) -> str:
        return "3" if self.cloud else "2"

    def add_issue(self, raw: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            raw.setdefault("id", str(next(self._ids)))
            raw["self"] = f"{self.url}/rest/api/{self.api}/issue/{raw['id']}"
            raw.setdefault("expand", ISSUE_EXPAND)
            self.issues[raw["key"]] = raw
            return raw

    def touch(self, key: str, when: datetime, **field_updates: Any) -> None:
        with self.lock:
            fields = self.issues[key]["fields"]
            fields.update(field_updates)
            fields["updated"] = jira_time(when)

    def move(self, key: str, new_key: str, when: datetime) -> None:
        """Move an issue to another project as Jira does: same id, a new key, 'updated' bumped."""
        project = new_key.rpartition("-")[0]
        with self.lock:
            raw = self.issues.pop(key)
            raw["key"] = new_key
            fields = raw["fields"]
            fields["project"] = dict(fields["project"], key=project, name=project.title())
            fields["updated"] = jira_time(when)
            self.issues[new_key] = raw

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        *,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next ``times`` requests whose path ends with regex ``path``."""
        self.faults.append(Fault(method, re.compile(path + "$"), status, dict(headers or {}), body, times))

    def fail_after_commit(
        self, method: str, path: str, status: int, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Do the next matching request's work, then answer ``status`` (as a proxy that gave up would)."""
        self.faults.append(
            Fault(method, re.compile(path + "$"), status, dict(headers or {}), fail_after_commit=True)
        )

    def drop_after_commit(self, method: str, path: str, *, times: int = 1) -> None:
        """Do the next matching request's work, then close the connection without answering."""
        self.faults.append(Fault(method, re.compile(path + "$"), times=times, drop_after_commit=True))

    def hang(self, method: str, path: str, seconds: float, *, times: int = 1) -> None:
        """Leave the next ``times`` matching requests unanswered for ``seconds``, then close (nothing done)."""
        self.faults.append(Fault(method, re.compile(path + "$"), times=times, hang_seconds=seconds))

    def requests(self, method: str | None = None, path: str | None = None) -> list[Exchange]:
        pattern = re.compile(path + "$") if path else None
        return [
            e
            for e in self.log
            if (method is None or e.method == method) and (pattern is None or pattern.search(e.path))
        ]

    def all_comments(self, key: str) -> list[dict[str, Any]]:
        return list(self.comments.get(key, []))

    def add_person_comment(self, key: str, body: Any, *, when: datetime | None = None) -> str:
        """A comment by a person (Dana, not the bot) straight into the site ('updated' bumped); its id."""
        with self.lock:
            return str(new_comment(self, key, person(self), body, [], when or datetime.now(UTC))["id"])

    def delete_comment(self, key: str, comment_id: str) -> None:
        """A person deletes a comment (in the web UI): it is gone, later reads and edits answer 404."""
        with self.lock:
            self.comments[key] = [c for c in self.comments.get(key, []) if c["id"] != comment_id]

    # --- field list ----------------------------------------------------------------------------

    def field_list(self) -> list[dict[str, Any]]:
        def system(
            fid: str, name: str, kind: str, clause: str | None = None, **schema: Any
        ) -> dict[str, Any]:
            return {
                "id": fid,
                "key": fid,
                "name": name,
                "custom": False,
                "orderable": True,
                "navigable": True,
                "searchable": True,
                "clauseNames": [clause or fid],
                "schema": {"type": kind, "system": fid, **schema},
            }

        def custom(fid: str, name: str, kind: str, custom_type: str, **schema: Any) -> dict[str, Any]:
            number = int(fid.rsplit("_", 1)[1])
            return {
                "id": fid,
                "key": fid,
                "name": name,
                "custom": True,
                "orderable": True,
                "navigable": True,
                "searchable": True,
                "clauseNames": [f"cf[{number}]", name],
                "schema": {"type": kind, "custom": custom_type, "customId": number, **schema},
            }

        ids = self.field_ids
        result = [
            system("summary", "Summary", "string"),
            system("description", "Description", "string"),
            system("issuetype", "Issue Type", "issuetype", "type"),
            system("status", "Status", "status"),
            system("priority", "Priority", "priority"),
            system("labels", "Labels", "array", items="string"),
            system("assignee", "Assignee", "user"),
            system("reporter", "Reporter", "user"),
            system("created", "Created", "datetime"),
            system("updated", "Updated", "datetime"),
            system("project", "Project", "project"),
            system("issuelinks", "Linked Issues", "array", "issueLink", items="issuelinks"),
            system("resolutiondate", "Resolved", "datetime", "resolved"),
            system("subtasks", "Sub-tasks", "array", items="issuelinks"),
        ]
        if self.cloud:
            result.append(system("parent", "Parent", "issuelink"))
        if ids.story_points:
            result.append(custom(ids.story_points, ids.story_points_name, "number", ids.story_points_type))
        if ids.sprint:
            result.append(
                custom(
                    ids.sprint,
                    "Sprint",
                    "array",
                    "com.pyxis.greenhopper.jira:gh-sprint",
                    items="json",
                )
            )
        if ids.rank:
            result.append(custom(ids.rank, "Rank", "any", "com.pyxis.greenhopper.jira:gh-lexo-rank"))
        if ids.acceptance_criteria:
            result.append(
                custom(
                    ids.acceptance_criteria,
                    "Acceptance Criteria",
                    "string",
                    "com.atlassian.jira.plugin.system.customfieldtypes:textarea",
                )
            )
        if ids.epic_link:
            result.append(
                custom(ids.epic_link, "Epic Link", "any", "com.pyxis.greenhopper.jira:gh-epic-link")
            )
        if ids.original_points:
            result.append(
                custom(
                    ids.original_points,
                    "Original story points",
                    "number",
                    "com.atlassian.jpo:jpo-custom-field-original-story-points",
                )
            )
        # An unrelated number field with a similar name, to keep matching honest.
        result.append(
            custom(
                "customfield_10999",
                "Story Points (legacy import)",
                "string",
                "com.atlassian.jira.plugin.system.customfieldtypes:textfield",
            )
        )
        return result

    # --- JQL -----------------------------------------------------------------------------------

    def resolve(self, issue: Mapping[str, Any], name: str) -> Any:
        fields = issue["fields"]
        if name == "project":
            project = fields.get("project") or {}
            return (str(project.get("key", "")).lower(), str(project.get("name", "")).lower())
        if name in ("key", "issuekey"):
            return issue["key"]
        if name == "status":
            return fields["status"]["name"]
        if name == "statuscategory":
            category = fields["status"]["statusCategory"]
            return (category["key"], category["name"].lower())
        if name in ("issuetype", "type"):
            return fields["issuetype"]["name"]
        if name == "labels":
            return fields.get("labels") or []
        if name in ("created", "updated"):
            value = fields.get(name)
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z") if value else None
        raise fake_jql.JqlError(f"Field '{name}' does not exist or you do not have permission to view it.")

    def search(self, jql: str) -> tuple[list[dict[str, Any]], bool]:
        """Matching issues in query order, and whether the query had any restriction."""
        query = fake_jql.parse(jql, datetime.now(UTC), self.resolve)
        with self.lock:
            issues = list(self.issues.values())
        known = {i["key"].upper() for i in issues}
        for key in query.keys:
            if key.upper() not in known:
                raise fake_jql.JqlError(f"An issue with key '{key}' does not exist for field 'key'.")
        known_ids = {str(i["id"]) for i in issues}
        for issue_id in query.ids:
            if issue_id not in known_ids:
                raise fake_jql.JqlError(f"A value with ID '{issue_id}' does not exist for the field 'id'.")
        if any(key.upper() not in known for key in query.range_keys):
            # Jira: a key compared with > or < that names no issue (deleted, say) matches nothing.
            return [], True
        if query.predicate is not None:
            issues = [i for i in issues if query.predicate(i)]
        for name, descending in reversed(query.order_by or (("key", False),)):
            issues.sort(key=lambda i, n=name: self._order_key(i, n), reverse=descending)
        return issues, query.predicate is not None

    def _order_key(self, issue: Mapping[str, Any], name: str) -> Any:
        if name == "rank":
            rank_id = self.field_ids.rank
            return str(issue["fields"].get(rank_id) or "~") if rank_id else ""
        if name in ("key", "issuekey"):
            prefix, _, number = issue["key"].rpartition("-")
            return (prefix, int(number))
        if name in ("updated", "created"):
            return issue["fields"].get(name) or ""
        raise fake_jql.JqlError(f"Field '{name}' does not exist or you do not have permission to view it.")

    def token_for(self, matches: list[dict[str, Any]], offset: int) -> str:
        token = secrets.token_urlsafe(24)
        self._tokens[token] = (matches, offset)
        return token

    def resume(self, token: str) -> tuple[list[dict[str, Any]], int] | None:
        return self._tokens.get(token)


def select_fields(issue: Mapping[str, Any], wanted: Sequence[str] | None) -> dict[str, Any]:
    """The issue as search returns it for a ``fields`` list (``None`` = every field)."""
    out = {k: issue[k] for k in ("expand", "id", "self", "key")}
    if wanted is None or "*all" in wanted or "*navigable" in wanted:
        out["fields"] = dict(issue["fields"])
        return out
    names = [w for w in wanted if w and not w.startswith("-")]
    if names and all(n == "id" for n in names):
        return {"id": issue["id"]}
    out["fields"] = {name: issue["fields"].get(name) for name in names if name not in ("id", "key")}
    return out


def _split_fields(values: Sequence[str] | None) -> list[str] | None:
    if values is None:
        return None
    result: list[str] = []
    for value in values:
        result.extend(part.strip() for part in str(value).split(",") if part.strip())
    return result


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests read the site's log instead

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        segments = parts.path.split("/", 2)
        site = self.server.fake.sites.get("/" + segments[1]) if len(segments) > 1 else None
        if site is None:
            self._send(404, {"errorMessages": ["No such site"]})
            return
        path = "/" + (segments[2] if len(segments) > 2 else "")
        query = parse_qs(parts.query, keep_blank_values=True)
        try:
            body = json.loads(raw_body) if raw_body else None
        except json.JSONDecodeError:
            self._finish(
                site,
                method,
                path,
                query,
                raw_body,
                400,
                {"errorMessages": ["Unexpected character"]},
            )
            return
        with site.lock:
            fault = next(
                (f for f in site.faults if f.times > 0 and f.method == method and f.path.search(path)),
                None,
            )
            if fault is not None:
                fault.times -= 1
        if fault is not None and fault.hang_seconds > 0:
            with site.lock:
                site.log.append(Exchange(method, path, query, body, None, None, {}))
            time.sleep(fault.hang_seconds)  # the client's read timeout should end the wait first
            self.close_connection = True
            return
        if fault is not None and not (fault.drop_after_commit or fault.fail_after_commit):
            default = {"errorMessages": [f"Fault injected: HTTP {fault.status}"], "errors": {}}
            self._finish(
                site,
                method,
                path,
                query,
                body,
                fault.status,
                fault.body if fault.body is not None else default,
                fault.headers,
            )
            return
        if not self._authorised(site):
            self._finish(
                site,
                method,
                path,
                query,
                body,
                401,
                {
                    "errorMessages": [
                        "You are not authenticated. Authentication required to perform this operation."
                    ],
                    "errors": {},
                },
                {"WWW-Authenticate": 'Basic realm="protected-area"' if site.cloud else "Bearer"},
            )
            return
        try:
            status, payload = route(site, method, path, query, body)
        except fake_jql.JqlError as exc:
            status, payload = 400, {"errorMessages": [str(exc)], "warningMessages": []}
        if fault is not None and fault.fail_after_commit:  # the work is done, the answer is an error
            gateway = {"errorMessages": [f"HTTP {fault.status} from the gateway"], "errors": {}}
            self._finish(site, method, path, query, body, fault.status, gateway, fault.headers)
            return
        if fault is not None:  # drop_after_commit: the work is done, the answer never arrives
            with site.lock:
                site.log.append(Exchange(method, path, query, body, None, None, {}))
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self._finish(site, method, path, query, body, status, payload)

    def _authorised(self, site: Site) -> bool:
        header = self.headers.get("Authorization") or ""
        if site.cloud:
            expected = base64.b64encode(f"{site.email}:{site.token}".encode()).decode()
            return header == f"Basic {expected}"
        if site.dc_password is not None:
            basic = base64.b64encode(f"{site.dc_user}:{site.dc_password}".encode()).decode()
            if header == f"Basic {basic}":
                return True
        return header == f"Bearer {site.pat}"

    def _finish(
        self,
        site: Site,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Any,
        status: int,
        payload: Any,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        with site.lock:
            site.log.append(Exchange(method, path, query, body, status, payload, dict(headers or {})))
        self._send(status, payload, headers)

    def _send(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        raw = isinstance(payload, bytes)  # a non-JSON answer, as a proxy's login page would be
        data = b"" if payload is None else payload if raw else json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            kind = "text/html;charset=UTF-8" if raw else "application/json;charset=UTF-8"
            self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _one(query: Mapping[str, list[str]], name: str, default: str | None = None) -> str | None:
    values = query.get(name)
    return values[0] if values else default


def _int(value: Any, default: int) -> int:
    if value in (None, ""):
        return default
    return int(value)


def _error(status: int, message: str) -> tuple[int, Any]:
    return status, {"errorMessages": [message], "errors": {}}


def route(site: Site, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    """Answer one request on ``site``."""
    match = re.fullmatch(r"/rest/api/(2|3|latest)/(.*)", path)
    agile = re.fullmatch(r"/rest/agile/1\.0/board/(\d+)/configuration", path)
    if agile and method == "GET":
        board = site.boards.get(int(agile.group(1)))
        if board is None:
            return _error(
                404,
                f"Board {agile.group(1)} does not exist or you do not have permission to see it.",
            )
        return 200, board
    if not match:
        return _error(404, "Not found")
    version, rest = match.group(1), match.group(2)
    if version == "3" and not site.cloud:
        return _error(404, "null for uri: " + path)
    if rest == "serverInfo" and method == "GET":
        return 200, server_info(site)
    if rest == "myself" and method == "GET":
        return 200, _author(site)
    if rest == "field" and method == "GET":
        return 200, site.field_list()
    if rest == "search" and method in ("GET", "POST"):
        if site.cloud:
            return _error(
                410,
                "The requested API has been removed. "
                "Please migrate to the /rest/api/3/search/jql API. "
                "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046",
            )
        return search_dc(site, query if method == "GET" else _body_query(body))
    if rest == "search/approximate-count" and method == "POST" and site.cloud:
        matches, bounded = site.search(str((body or {}).get("jql") or ""))
        if not bounded:
            return _error(
                400,
                "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.",
            )
        return 200, {"count": len(matches)}
    if rest == "search/jql" and method in ("GET", "POST") and site.cloud:
        return search_cloud(site, query if method == "GET" else _body_query(body))
    comment = re.fullmatch(r"issue/([^/]+)/comment(?:/(\d+))?", rest)
    if comment:
        return comments_route(site, method, unquote(comment.group(1)), comment.group(2), query, body)
    prop = re.fullmatch(r"comment/(\d+)/properties/([^/]+)", rest)
    if prop:
        return comment_property(site, method, prop.group(1), unquote(prop.group(2)), body)
    return _error(404, "Not found")


def _body_query(body: Any) -> dict[str, list[str]]:
    if not isinstance(body, Mapping):
        return {}
    out: dict[str, list[str]] = {}
    for key, value in body.items():
        if isinstance(value, list):
            out[key] = [",".join(str(v) for v in value)]
        elif value is not None:
            out[key] = [str(value)]
    return out


def server_info(site: Site) -> dict[str, Any]:
    now = jira_time(datetime.now(UTC))
    if site.cloud:
        return {
            "baseUrl": site.url,
            "displayUrl": site.url,
            "version": "1001.0.0-SNAPSHOT",
            "versionNumbers": [1001, 0, 0],
            "deploymentType": "Cloud",
            "buildNumber": 100289,
            "buildDate": "2026-11-18T08:02:11.000+0000",
            "serverTime": now,
            "scmInfo": "5b1e1f0b8a2d1d0b7c4f8f7e8b9a0c1d2e3f4a5b",
            "serverTitle": "Jira",
        }
    return {
        "baseUrl": site.url,
        "version": "9.12.15",
        "versionNumbers": [9, 12, 15],
        "deploymentType": "Server",
        "buildNumber": 9120015,
        "buildDate": "2024-10-29T00:00:00.000+0000",
        "serverTime": now,
        "scmInfo": "0c0ca3bd3d3b1a3e0f4c2d3e4f5a6b7c8d9e0f1a",
        "serverTitle": "Jira Data Center",
    }


def search_cloud(site: Site, query: dict[str, list[str]]) -> tuple[int, Any]:
    if site.before_search is not None:
        site.before_search(query)
    token = _one(query, "nextPageToken")
    wanted = _split_fields(query.get("fields"))
    if token:
        resumed = site.resume(token)
        if resumed is None:
            return _error(400, "The provided next page token is invalid or expired.")
        issues, offset = resumed
    else:
        issues, bounded = site.search(_one(query, "jql", "") or "")
        offset = 0
        if not bounded:
            return _error(
                400,
                "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.",
            )
    ids_only = wanted is not None and all(f in ("id", "key") for f in wanted)
    stamps = wanted is not None and all(f in ("id", "key", "updated") for f in wanted)
    cap = 5000 if ids_only else site.cloud_stamp_page_cap if stamps else site.cloud_page_cap
    size = min(_int(_one(query, "maxResults"), 50), cap)
    page = issues[offset : offset + size]
    result: dict[str, Any] = {
        "issues": [select_fields(i, wanted if wanted is not None else ["id"]) for i in page]
    }
    if offset + size < len(issues):
        result["nextPageToken"] = site.token_for(issues, offset + size)
        result["isLast"] = False
    else:
        result["isLast"] = True
    return 200, result


def search_dc(site: Site, query: dict[str, list[str]]) -> tuple[int, Any]:
    if site.before_search is not None:
        site.before_search(query)
    jql = _one(query, "jql", "") or ""
    issues, _ = site.search(jql)
    start = _int(_one(query, "startAt"), 0)
    asked = _int(_one(query, "maxResults"), 50)
    if start + asked > site.max_result_window:
        # What Jira DC answers past jira.search.platform.max.result.window (Atlassian KB
        # "Handling JQL REST API searching exceeding max_result_window").
        return _error(
            500,
            f"Search limit exceeded. We couldn't complete your search because it requests "
            f"{start + asked:,} results which exceeded the search platform limit of "
            f"{site.max_result_window:,}. Try refining your query or contact your Jira administrator. "
            "Repeating the same search may not work.",
        )
    size = min(asked, site.dc_page_cap)
    wanted = _split_fields(query.get("fields"))
    page = issues[start : start + size]
    return 200, {
        "expand": "schema,names",
        "startAt": start,
        "maxResults": size,
        "total": len(issues),
        "issues": [_dc_issue(i, wanted) for i in page],
    }


def _dc_issue(issue: Mapping[str, Any], wanted: Sequence[str] | None) -> dict[str, Any]:
    """Data Center always names an issue's key and self, even when only ids were asked for."""
    selected = select_fields(issue, wanted)
    if "key" not in selected:
        selected = {k: issue[k] for k in ("expand", "id", "self", "key")}
    return selected


# (Cloud accountId, Data Center name, Data Center key, display name) of the users a site knows.
BOT = ("5b10ac8d82e05b22cc7d4ef5", "refinebot", "JIRAUSER10100", "refinebot")
DANA = ("557058:human-dana", "dana", "JIRAUSER10200", "Dana Dev")


def _user(site: Site, who: tuple[str, str, str, str]) -> dict[str, Any]:
    account_id, name, key, display = who
    if site.cloud:
        return {
            "self": f"{site.url}/rest/api/3/user?accountId={account_id}",
            "accountId": account_id,
            "displayName": display,
            "active": True,
            "timeZone": "Europe/Berlin",
            "accountType": "atlassian",
        }
    return {
        "self": f"{site.url}/rest/api/2/user?username={name}",
        "name": name,
        "key": key,
        "displayName": display,
        "active": True,
        "timeZone": "Europe/Berlin",
    }


def _author(site: Site) -> dict[str, Any]:
    return _user(site, BOT)


def person(site: Site) -> dict[str, Any]:
    """A user who is not the bot, in the deployment's shape."""
    return _user(site, DANA)


def new_comment(
    site: Site, key: str, author: dict[str, Any], body: Any, properties: list[Any], when: datetime
) -> dict[str, Any]:
    """A stored comment in Jira's shape, appended to the issue's comments (callers hold the lock)."""
    stamp = jira_time(when)
    new_id = str(next(site._comment_ids))
    comment = {
        "self": f"{site.url}/rest/api/{site.api}/issue/{site.issues[key]['id']}/comment/{new_id}",
        "id": new_id,
        "author": author,
        "body": body,
        "updateAuthor": author,
        "created": stamp,
        "updated": stamp,
        "jsdPublic": True,
        "properties": properties,
    }
    site.comments.setdefault(key, []).append(comment)
    site.issues[key]["fields"]["updated"] = stamp  # Jira bumps the issue's 'updated' for a new comment
    return comment


def _public_comment(comment: Mapping[str, Any], expand: str) -> dict[str, Any]:
    out = {k: v for k, v in comment.items() if k != "properties"}
    if "properties" in expand.split(","):
        out["properties"] = list(comment.get("properties") or [])
    return out


def comments_route(
    site: Site,
    method: str,
    key: str,
    comment_id: str | None,
    query: dict[str, list[str]],
    body: Any,
) -> tuple[int, Any]:
    if key not in site.issues:
        return _error(404, "Issue does not exist or you do not have permission to see it.")
    expand = _one(query, "expand", "") or ""
    with site.lock:
        comments = site.comments.setdefault(key, [])
        if method == "GET" and comment_id is None:
            start = _int(_one(query, "startAt"), 0)
            size = min(_int(_one(query, "maxResults"), 100), 100)
            ordered = sorted(
                comments, key=lambda c: c["created"], reverse=_one(query, "orderBy") == "-created"
            )
            page = ordered[start : start + size]
            return 200, {
                "startAt": start,
                "maxResults": size,
                "total": len(comments),
                "comments": [_public_comment(c, expand) for c in page],
            }
        if method == "POST" and comment_id is None:
            problem = _check_body(site, body)
            if problem:
                return 400, {"errorMessages": [], "errors": {"comment": problem}}
            properties = list(body.get("properties") or [])
            comment = new_comment(site, key, _author(site), body["body"], properties, datetime.now(UTC))
            for prop in properties:
                site.comment_properties.setdefault(comment["id"], {})[prop["key"]] = prop["value"]
            return 201, _public_comment(comment, expand)
        found = next((c for c in comments if c["id"] == comment_id), None)
        if found is None:
            return _error(404, "Can not find a comment for the id: " + str(comment_id) + ".")
        if method == "GET":
            return 200, _public_comment(found, expand)
        if method == "PUT":
            problem = _check_body(site, body)
            if problem:
                return 400, {"errorMessages": [], "errors": {"comment": problem}}
            found["body"] = body["body"]
            found["updated"] = jira_time(datetime.now(UTC))
            site.issues[key]["fields"]["updated"] = found["updated"]  # an edit bumps it too
            found["notified"] = _one(query, "notifyUsers", "true")
            for prop in body.get("properties") or []:
                site.comment_properties.setdefault(found["id"], {})[prop["key"]] = prop["value"]
                found["properties"] = [p for p in found["properties"] if p["key"] != prop["key"]] + [prop]
            return 200, _public_comment({k: v for k, v in found.items() if k != "notified"}, expand)
    return _error(405, "Method not allowed")


def _check_body(site: Site, body: Any) -> str | None:
    if not isinstance(body, Mapping) or "body" not in body:
        return "Comment body can not be empty!"
    value = body["body"]
    if site.cloud:
        if not isinstance(value, Mapping) or value.get("type") != "doc" or value.get("version") != 1:
            return "Comment body is not valid!"
    elif not isinstance(value, str) or not value.strip():
        return "Comment body can not be empty!"
    return None


def comment_property(site: Site, method: str, comment_id: str, key: str, body: Any) -> tuple[int, Any]:
    with site.lock:
        props = site.comment_properties.setdefault(comment_id, {})
        if method == "PUT":
            created = key not in props
            props[key] = body
            return (201 if created else 200), None
        if method == "GET":
            if key not in props:
                return _error(404, f"The property with key '{key}' does not exist.")
            return 200, {"key": key, "value": props[key]}
    return _error(405, "Method not allowed")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeJiraServer


class FakeJiraServer:
    """The HTTP server hosting every fake site."""

    def __init__(self) -> None:
        self._http = _Server(("127.0.0.1", 0), _Handler)
        self._http.fake = self
        self.sites: dict[str, Site] = {}
        self._counter = itertools.count(1)
        self._thread = threading.Thread(target=self._http.serve_forever, name="fake-jira", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeJiraServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def new_site(self, *, cloud: bool = True, **kwargs: Any) -> Site:
        prefix = f"/s{next(self._counter)}"
        site = Site(self, prefix, cloud=cloud, **kwargs)
        self.sites[prefix] = site
        return site
