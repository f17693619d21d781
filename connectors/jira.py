"""Read a Jira Cloud or Data Center backlog through the official ``jira`` package; comment on it.

The deployment is told from ``serverInfo`` (asked on API v2, which both have). Cloud (email + API
token, basic auth) searches ``/rest/api/3/search/jql`` following ``nextPageToken``; Data Center
(personal access token, or username + password) pages ``/rest/api/2/search`` by ``startAt``, honours
a page cap smaller than asked, steps back when issues leave the results between pages, and reads
result sets beyond the 10,000-result window by key ranges, project by project (Jira compares keys
within the named key's project only). Field ids are discovered once per source
and cached. Later runs fetch only what changed since the last successful sync (minus a 5-minute
overlap) unless a full sync is asked for, and learn which items left the query (moved, done,
deleted, no longer matching) from ids-only searches, and refresh the status of blockers outside the
backlog.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests
from jira import JIRA
from jira.exceptions import JIRAError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from connectors.base import ConnectorError, FetchResult, SkippedItem
from connectors.jira_comment_body import (
    PROPERTY_KEY,
    body_has_marker,
    check_marker,
    property_has_marker,
    to_adf,
    to_wiki,
)
from connectors.jira_fields import BoardHints, FieldOverrides, discover_field_map
from connectors.jira_jql import JqlQuery, default_query, jql_string, updated_within
from connectors.jira_json import JiraFieldMap, map_jira_issue
from connectors.jira_retry import (
    RATE_LIMITED,
    RetryPolicy,
    RetryRunner,
    headers_of,
    is_connection_failure,
    status_of,
)
from connectors.mapping_errors import MappingError
from refinebot.config import JiraSourceConfig
from refinebot.models import Issue, LinkKind, StatusCategory

logger = logging.getLogger(__name__)

OVERLAP_MINUTES = 5
FULL_SYNC_AFTER = timedelta(hours=24)
CLOUD_PAGE_SIZE = 100  # the most search/jql returns per page when fields are requested
CLOUD_ID_PAGE_SIZE = 5000  # ...and when only ids are requested
DC_PAGE_SIZE = 1000  # jira.search.views.default.max; servers may cap lower, which paging honours
DC_RESULT_WINDOW = 10_000  # jira.search.platform.max.result.window: startAt + maxResults beyond fails
COMMENT_PAGE_SIZE = 100
_PROGRESS_LOG_EVERY = 10  # pages between one-line progress logs when not on a terminal


@dataclass(slots=True)
class ProjectSyncState:
    """What one project's last successful sync left behind."""

    query: str
    last_sync: datetime | None = None
    issues: dict[str, Issue] = field(default_factory=dict)
    # Jira issue id -> key, to read the id-only scans of what changed
    ids: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class JiraSyncState:
    """What the connector remembers between runs of a source: its fields and per-project syncs.

    Kept in memory for now; the store will persist it later.
    """

    field_map: JiraFieldMap | None = None
    projects: dict[str, ProjectSyncState] = field(default_factory=dict)

    def project(self, project: str, query: str) -> ProjectSyncState:
        """The state of ``project``; a changed query starts over with a full sync."""
        current = self.projects.get(project)
        if current is None or current.query != query:
            current = ProjectSyncState(query=query)
            self.projects[project] = current
        return current


_STATES: dict[tuple[str, str], JiraSyncState] = {}


def shared_state(source_name: str, url: str) -> JiraSyncState:
    """The process-wide state of one source (so field discovery runs once per process)."""
    return _STATES.setdefault((source_name, url), JiraSyncState())


class _SyncProgress:
    """A Rich progress bar on a terminal, else a one-line log every few pages."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label = label
        self.pages = 0
        self.items = 0
        self._bar: Progress | None = None
        self._task: Any = None
        if enabled:
            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=Console(stderr=True),  # stdout may carry JSON output
                transient=True,
            )

    def __enter__(self) -> _SyncProgress:
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def page(self, count: int, total: int | None) -> None:
        self.pages += 1
        self.items += count
        if self._bar is not None:
            self._bar.update(self._task, completed=self.items, total=total)
        elif self.pages % _PROGRESS_LOG_EVERY == 0:
            of = f" of {total}" if total is not None else ""
            logger.info("%s: %d%s issues in %d pages", self.label, self.items, of, self.pages)


class JiraConnector:
    """A ``CommentingConnector`` for one Jira Cloud site or Data Center server."""

    def __init__(
        self,
        source: JiraSourceConfig,
        *,
        name: str = "jira",
        state: JiraSyncState | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        progress: bool | None = None,
    ) -> None:
        self.source = source
        self.name = name
        self.state = state if state is not None else shared_state(name, source.url)
        self._clock = clock
        self._runner = RetryRunner(
            RetryPolicy(
                attempts=source.retry_attempts,
                base_seconds=source.backoff_base_seconds,
                max_seconds=source.backoff_max_seconds,
            ),
            sleep=sleep,
            clock=clock,
        )
        self._progress = progress
        self._client: Any = None
        self._cloud = False
        self._reordered = False  # a Data Center search was read in key order (too many for offsets)
        self._me: dict[str, str] | None = None  # the bot's own user: accountId (Cloud), key/name (DC)
        self.http_requests = 0  # every HTTP request this connector made, retries included

    # --- connection ----------------------------------------------------------------------------

    @property
    def is_cloud(self) -> bool:
        """True once connected to a Jira Cloud site."""
        self._connect()
        return self._cloud

    def _where(self) -> str:
        return f"Jira source {self.name!r} ({self.source.url})"

    def _connect(self) -> Any:
        if self._client is not None:
            return self._client
        token = self.source.token()
        email = self.source.email
        if token is None:
            what = "API token" if email else "personal access token"
            raise ConnectorError(
                f"{self._where()}: environment variable {self.source.token_env} is not set "
                f"(it must hold the {what})"
            )
        # API v2 exists on Cloud and Data Center alike (v3 only on Cloud), so the probe uses it and
        # the deployment type decides the version afterwards.
        client = self._build_client(email, token.get_secret_value())
        info = self._server_info(client)
        cloud = info.get("deploymentType") == "Cloud"
        if cloud and not email:
            raise ConnectorError(
                f"{self._where()}: this is Jira Cloud, which needs email + API token; "
                "set 'email' in the source config"
            )
        if cloud:
            # Cloud: v3 (ADF bodies, search/jql). The package builds every URL from this option,
            # so switching it here saves asking for serverInfo a second time.
            client._options["rest_api_version"] = "3"
        # What the package itself would have recorded with get_server_info=True.
        client.deploymentType = info.get("deploymentType")
        client._version = tuple(info["versionNumbers"])
        self._client = client
        self._cloud = cloud
        logger.info("%s: connected (%s)", self._where(), "Cloud" if cloud else "Data Center/Server")
        return client

    def _build_client(self, email: str | None, secret: str) -> Any:
        """A client on API v2 that has made no request yet (every request it makes is counted)."""
        client = JIRA(
            server=self.source.url,
            options={"rest_api_version": "2"},
            basic_auth=(email, secret) if email else None,
            token_auth=None if email else secret,
            # Asked for below instead: the package's own call retries an empty answer three times
            # and fails with a KeyError on anything that is not serverInfo.
            get_server_info=False,
            max_retries=0,  # retries are ours: bounded, short in tests, never a blind POST
            timeout=self.source.timeout_seconds,
        )

        def count(response: requests.Response, *args: Any, **kwargs: Any) -> None:
            self.http_requests += 1

        client._session.hooks["response"].append(count)
        return client

    def _server_info(self, client: Any) -> Mapping[str, Any]:
        """``serverInfo``, or a clear error when the URL answers but is not a Jira server."""
        not_jira = (
            f"{self._where()}: the URL does not look like a Jira server (its serverInfo answer is "
            "not Jira's{why}); check the source's url, e.g. for a missing context path or a proxy "
            "login page"
        )
        try:
            info = self._runner.call(f"{self._where()}: server info", lambda: client._get_json("serverInfo"))
        except (JIRAError, requests.RequestException) as exc:
            if status_of(exc) == 404:
                raise ConnectorError(not_jira.format(why=": HTTP 404")) from None
            if isinstance(exc, requests.JSONDecodeError):
                raise ConnectorError(not_jira.format(why=": not JSON")) from None
            raise self._error(exc, "connecting") from None
        except ValueError:  # JSON decoding that is not requests' own
            raise ConnectorError(not_jira.format(why=": not JSON")) from None
        if not isinstance(info, Mapping):
            raise ConnectorError(not_jira.format(why=""))
        versions = info.get("versionNumbers")
        if not isinstance(versions, list) or not all(isinstance(v, int) for v in versions):
            raise ConnectorError(not_jira.format(why=""))
        return info

    def _error(self, exc: BaseException, action: str) -> ConnectorError:
        """A clear, secret-free error: the package's own messages include request headers."""
        status = status_of(exc)
        where = self._where()
        if status == 401:
            who = f"API token for {self.source.email}" if self.source.email else "personal access token"
            return ConnectorError(
                f"{where}: Jira rejected the credentials (HTTP 401) while {action}; check that "
                f"{self.source.token_env} holds a valid, unexpired {who}"
            )
        if status == 403:
            return ConnectorError(
                f"{where}: access denied (HTTP 403) while {action}; check that the account may "
                "browse the project (and add comments), and that it is not locked out by CAPTCHA"
            )
        if status == 410:
            return ConnectorError(f"{where}: Jira says this API was removed (HTTP 410) while {action}")
        if status in RATE_LIMITED:
            return ConnectorError(
                f"{where}: still rate limited (HTTP {status}) after "
                f"{self.source.retry_attempts} attempts while {action}; try again later"
            )
        if status is not None:
            detail = getattr(exc, "text", "") or ""
            kind = _RejectedError if status == 400 else ConnectorError
            return kind(f"{where}: HTTP {status} while {action}" + (f": {detail}" if detail else ""))
        if isinstance(exc, requests.JSONDecodeError):  # a proxy's login page, say
            return ConnectorError(f"{where}: the answer to {action} is not JSON")
        if is_connection_failure(exc):
            return ConnectorError(f"{where}: cannot reach the server while {action} ({type(exc).__name__})")
        return ConnectorError(f"{where}: request failed while {action} ({type(exc).__name__})")

    def _get(self, path: str, params: Mapping[str, Any] | None, action: str, *, agile: bool = False) -> Any:
        client = self._connect()
        base = client.AGILE_BASE_URL if agile else client.JIRA_BASE_URL

        def call() -> Any:
            # _get_json is the package's own GET + JSON + error parsing. Its search methods would
            # fetch the whole /field list again to translate names we already send as field ids.
            return client._get_json(path, params=dict(params or {}), base=base)

        try:
            return self._runner.call(f"{self._where()}: {action}", call)
        except (JIRAError, requests.RequestException) as exc:
            raise self._error(exc, action) from None
        except ValueError:  # JSON decoding that is not requests' own
            raise ConnectorError(f"{self._where()}: the answer to {action} is not JSON") from None

    def _send(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """One write; faults that leave its outcome unknown are not retried (the caller decides)."""
        client = self._connect()
        url = client._get_url(path)
        response = client._session.request(method, url, params=dict(params or {}), data=json.dumps(payload))
        return response.json() if response.content else None

    # --- field discovery -----------------------------------------------------------------------

    def field_map(self) -> JiraFieldMap:
        """Where story points, sprint, rank and acceptance criteria live (cached per source)."""
        if self.state.field_map is not None:
            return self.state.field_map
        overrides = FieldOverrides(
            story_points=self.source.story_points_field,
            sprint=self.source.sprint_field,
            rank=self.source.rank_field,
            acceptance_criteria=self.source.acceptance_criteria_field,
        )
        board = None
        if self.source.board_id is not None:
            config = self._get(
                f"board/{self.source.board_id}/configuration",
                None,
                f"reading board {self.source.board_id}'s configuration",
                agile=True,
            )
            if isinstance(config, Mapping):
                board = BoardHints.from_configuration(config)
        fields = self._get("field", None, "listing fields")
        if not isinstance(fields, list):
            raise ConnectorError(f"{self._where()}: the field list is not a JSON array")
        field_map = discover_field_map(fields, overrides, board)
        logger.info(
            "%s: fields: story points %s, sprint %s, rank %s, acceptance criteria %s",
            self._where(),
            ", ".join(field_map.story_points) or "-",
            ", ".join(field_map.sprint) or "-",
            ", ".join(field_map.rank) or "-",
            ", ".join(field_map.acceptance_criteria) or "-",
        )
        self.state.field_map = field_map
        return field_map

    # --- search --------------------------------------------------------------------------------

    def _pages(
        self, jql: str, fields: Sequence[str], *, ids_only: bool = False
    ) -> Iterator[tuple[list[Any], int | None]]:
        """Each page of issues matching ``jql`` with its total (Data Center) or None (Cloud)."""
        if self._cloud:
            yield from self._cloud_pages(jql, fields, ids_only=ids_only)
        else:
            yield from self._dc_pages(jql, fields)

    def _cloud_pages(
        self, jql: str, fields: Sequence[str], *, ids_only: bool
    ) -> Iterator[tuple[list[Any], None]]:
        size = self.source.page_size or (CLOUD_ID_PAGE_SIZE if ids_only else CLOUD_PAGE_SIZE)
        token: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {"jql": jql, "maxResults": size, "fields": ",".join(fields)}
            if token:
                params["nextPageToken"] = token
            page = self._get("search/jql", params, "searching issues")
            issues = self._page_issues(page)
            yield issues, None
            token = page.get("nextPageToken")
            if page.get("isLast") is True or not token:
                if page.get("isLast") is False:
                    logger.warning("%s: search page says more follow but gives no token", self._where())
                return
            if token in seen:
                raise ConnectorError(f"{self._where()}: the search repeated a page token; stopping")
            seen.add(token)

    def _dc_pages(self, jql: str, fields: Sequence[str]) -> Iterator[tuple[list[Any], int | None]]:
        size = self.source.page_size or DC_PAGE_SIZE
        query = JqlQuery.parse(jql)
        first = True
        for issues, total, reached_window in self._dc_offset_pages(jql, fields, size):
            if first and total is not None and total > DC_RESULT_WINDOW:
                # More than offsets can reach (notes §1.2): read it all again by key ranges. The
                # caller puts the issues back into rank order.
                logger.info(
                    "%s: %d issues match, more than the %d offsets can reach; reading by key ranges",
                    self._where(),
                    total,
                    DC_RESULT_WINDOW,
                )
                self._reordered = True
                yield from self._dc_key_range_pages(query, fields, size)
                return
            first = False
            yield issues, total
            if reached_window:
                # The results grew past the window while being read: read them by key ranges.
                self._reordered = True
                yield from self._dc_key_range_pages(query, fields, size)
                return

    def _dc_offset_pages(
        self, jql: str, fields: Sequence[str], size: int
    ) -> Iterator[tuple[list[Any], int | None, bool]]:
        """Pages of one Data Center search by ``startAt`` while the result window allows.

        Yields each page, its total, and whether the next page would lie beyond the window (the
        last page yielded then).
        """
        start = 0
        previous_total: int | None = None
        while True:
            asked = min(size, DC_RESULT_WINDOW - start)
            params = {"jql": jql, "startAt": start, "maxResults": asked, "fields": ",".join(fields)}
            page = self._get("search", params, "searching issues")
            issues = self._page_issues(page)
            total = page.get("total")
            total = total if isinstance(total, int) else None
            start += len(issues)
            if total is not None and previous_total is not None and total < previous_total:
                # Issues left the result set since the last page, so later ones moved up by as
                # many offsets: step back over them, or the first ones moved would be skipped.
                # Callers drop the repeats this brings (by key).
                start = max(start - len(issues) - (previous_total - total), 0)
            previous_total = total
            # The server may cap maxResults below what was asked: follow total, not the page size.
            if not issues or total is None or start >= total:
                yield issues, total, False
                return
            if start >= DC_RESULT_WINDOW:
                yield issues, total, True
                return
            yield issues, total, False

    def _dc_key_range_pages(
        self, query: JqlQuery, fields: Sequence[str], size: int
    ) -> Iterator[tuple[list[Any], int | None]]:
        """Every issue ``query`` matches, read in key order past the offset window.

        Jira compares ``key > "P-n"`` within P's project only (and matches nothing when P-n no
        longer exists), so the ranges are project by project: a search in key order (projects one
        after another) up to the window, then ``project = P AND key > "P-n"`` for the project it
        stopped in, then the same search again without the projects finished. An empty
        continuation from a key that no longer exists (deleted or moved meanwhile) steps back to
        an earlier key; the read never ends silently.
        """
        done: list[str] = []  # projects (keys) read completely
        project: str | None = None  # the project being continued by key
        keys: list[str] = []  # its keys read, in order: where to continue (or step back to)
        step_backs = 0
        while True:
            if project is None:
                where = query.where
                if done:
                    where = query.and_(f"project not in ({', '.join(jql_string(p) for p in done)})").where
            else:
                where = query.and_(f"project = {jql_string(project)} AND key > {jql_string(keys[-1])}").where
            got_any = False
            reached = False
            read: dict[str, list[str]] = {}  # this pass: project -> keys, in key order
            for issues, total, reached_window in self._dc_offset_pages(
                JqlQuery(where, "key ASC").text(), fields, size
            ):
                for raw in issues:
                    key = str(raw.get("key") or "") if isinstance(raw, Mapping) else ""
                    if key:
                        got_any = True
                        read.setdefault(key.rpartition("-")[0], []).append(key)
                yield issues, total
                reached = reached_window
            if reached and not read:
                raise ConnectorError(f"{self._where()}: search results without issue keys")
            if reached:
                # Key order reads projects one after another: all but the last one are complete.
                last = list(read)[-1]
                done.extend(p for p in list(read)[:-1] if p not in done)
                if project != last:
                    project, keys, step_backs = last, [], 0
                keys.extend(read[last])
                continue
            if project is None:
                return  # a pass over every project not yet done reached its end: all read
            if not got_any and not self._key_exists(keys[-1]):
                # The key continued from is gone (deleted or moved meanwhile): step back, twice as
                # far each time (repeats are dropped by key), so mass deletions end quickly too.
                step = 2**step_backs
                step_backs += 1
                del keys[-step:]
                if not keys:
                    raise ConnectorError(
                        f"{self._where()}: reading beyond the {DC_RESULT_WINDOW:,}-result window: "
                        f"cannot continue in project {project}, every key read was deleted or moved "
                        "meanwhile; try the sync again"
                    )
                continue
            done.append(project)
            project, keys, step_backs = None, [], 0

    def _key_exists(self, key: str) -> bool:
        """Whether issue ``key`` exists (Jira refuses ``key = "X"`` with a 400 when it does not)."""
        try:
            self._get(
                "search",
                {"jql": f"key = {jql_string(key)}", "startAt": 0, "maxResults": 0, "fields": "id"},
                f"checking that {key} exists",
            )
        except _RejectedError:
            return False
        return True

    def _matching_ids(self, query: JqlQuery, project: str) -> tuple[set[str], int]:
        """The ids of every issue ``query`` matches now, and the requests that took."""
        ids: set[str] = set()
        used = self._search(
            query.text(), ["id"], f"{project}: membership", lambda page: ids.update(_ids(page)), ids_only=True
        )
        return ids, used

    def _count(self, query: JqlQuery) -> int | None:
        """How many issues match ``query`` now (None if the server would not say)."""
        if not self._cloud:
            # Data Center: a search for no issues still reports the total.
            page = self._get(
                "search",
                {"jql": query.where, "startAt": 0, "maxResults": 0, "fields": "id"},
                "counting issues",
            )
            total = page.get("total") if isinstance(page, Mapping) else None
            return total if isinstance(total, int) else None
        client = self._connect()
        action = "counting issues"

        def call() -> Any:
            response = client._session.post(
                client._get_url("search/approximate-count"), data=json.dumps({"jql": query.where})
            )
            return response.json()

        try:
            # A count changes nothing on the server, so it is retried like any read.
            answer = self._runner.call(f"{self._where()}: {action}", call)
        except (JIRAError, requests.RequestException) as exc:
            raise self._error(exc, action) from None
        except ValueError:
            raise ConnectorError(f"{self._where()}: the answer to {action} is not JSON") from None
        count = answer.get("count") if isinstance(answer, Mapping) else None
        return count if isinstance(count, int) else None

    def _page_issues(self, page: Any) -> list[Any]:
        if not isinstance(page, Mapping) or not isinstance(page.get("issues"), list):
            raise ConnectorError(f"{self._where()}: a search response has no 'issues' array")
        return list(page["issues"])

    def _search(
        self,
        jql: str,
        fields: Sequence[str],
        label: str,
        each_page: Callable[[list[Any]], None],
        *,
        ids_only: bool = False,
    ) -> int:
        """Hand each page to ``each_page`` as it arrives (pages are not kept); return requests."""
        enabled = self._progress if self._progress is not None else sys.stderr.isatty()
        requests_before = self.http_requests
        with _SyncProgress(label, enabled) as progress:
            for issues, total in self._pages(jql, fields, ids_only=ids_only):
                each_page(issues)
                progress.page(len(issues), total)
        return self.http_requests - requests_before

    # --- fetch ---------------------------------------------------------------------------------

    def fetch(self, project: str, query: str | None, *, full: bool = False) -> FetchResult:
        """Issues of ``project`` matching ``query`` (default: its open items in rank order).

        After one successful sync, later calls fetch only items updated since then (less a 5-minute
        overlap) and merge them into what is remembered, unless ``full`` is set.
        """
        started = self._clock()
        before = self.http_requests
        self._connect()
        field_map = self.field_map()
        discovery = self.http_requests - before
        base = JqlQuery.parse(query) if query else default_query(project)
        state = self.state.project(project, base.text())
        fields = field_map.wanted_fields()
        site = self.source.url
        skipped: list[SkippedItem] = []

        def mapped(raws: Sequence[Mapping[str, Any]]) -> list[tuple[str, Issue | None]]:
            out: list[tuple[str, Issue | None]] = []
            for raw in raws:
                key = (
                    str(raw.get("key") or f"issue id {raw.get('id', '?')}")
                    if isinstance(raw, Mapping)
                    else "?"
                )
                try:
                    out.append((key, map_jira_issue(raw, field_map, site=site)))
                except MappingError as exc:
                    logger.warning(
                        "%s: skipping %s: field %r: %s",
                        self._where(),
                        exc.record,
                        exc.field,
                        exc.reason,
                    )
                    skipped.append(SkippedItem(exc.record, f"field {exc.field!r}: {exc.reason}"))
                    out.append((key, None))
                if isinstance(raw, Mapping) and raw.get("id") and raw.get("key"):
                    state.ids[str(raw["id"])] = str(raw["key"])
            return out

        # A daily full sync refreshes what changes cannot show (the statuses links carry, say).
        incremental = not full and state.last_sync is not None and started - state.last_sync < FULL_SYNC_AFTER
        search_requests = 0
        if not incremental:
            issues: dict[str, Issue] = {}
            state.ids = {}

            def keep(page: list[Any]) -> None:
                for key, issue in mapped(page):
                    if issue is not None:
                        issues.setdefault(key, issue)  # offset paging can repeat an item that moved

            self._reordered = False
            search_requests += self._search(base.text(), fields, f"{project}: full sync", keep)
            if self._reordered:
                issues = dict(sorted(issues.items(), key=lambda kv: _rank_key(kv[1])))
            state.issues = issues
        else:
            assert state.last_sync is not None
            elapsed = max((started - state.last_sync).total_seconds(), 0.0)
            window = updated_within(math.ceil(elapsed / 60) + OVERLAP_MINUTES)
            results: list[tuple[str, Issue | None]] = []
            matched: set[str] = set()

            def changed(page: list[Any]) -> None:
                results.extend(mapped(page))
                matched.update(_ids(page))

            search_requests += self._search(base.and_(window).text(), fields, f"{project}: changes", changed)
            for key, issue in results:
                if issue is None:
                    state.issues.pop(key, None)
                else:
                    state.issues[key] = issue
            # A change scan cannot see items that left the query: moved to another project (the
            # default query is scoped to the project), done, no longer matching, deleted; nor items
            # that entered it without their 'updated' moving. Listing the ids the query matches
            # now settles all of these; it costs one request per 5000 issues on Cloud (1000 on
            # Data Center), so it is done directly only when one page holds them all.
            # Keys of everything changed anywhere, when known: only those blockers can have a new
            # status (resolving a blocker moves its own 'updated').
            changed_keys: set[str] | None = None
            if self._cloud and len(state.ids) < CLOUD_ID_PAGE_SIZE:
                current, used = self._matching_ids(base, project)
                search_requests += used
            else:
                changed_keys = set()
                # Otherwise: what changed in the projects the query covers and those of outside
                # blockers (ids and keys) but no longer matches has left. Only when the query's
                # count still disagrees with what is known (a move to another project, a deletion,
                # an unseen entry) are its ids listed.
                changed_ids: set[str] = set()

                def scope(page: list[Any]) -> None:
                    changed_ids.update(_ids(page))
                    changed_keys.update(
                        str(raw["key"]) for raw in page if isinstance(raw, Mapping) and raw.get("key")
                    )

                projects = self._scope_projects(state, project, default=query is None)
                if projects:
                    scoped = f"project in ({', '.join(jql_string(p) for p in projects)}) AND {window}"
                    try:
                        search_requests += self._search(
                            scoped, ["id", "key"], f"{project}: scope", scope, ids_only=True
                        )
                    except _RejectedError as exc:
                        # A project gone (or renamed) since its issues were read: scan by time alone.
                        logger.warning("%s: %s: scanning all changes: %s", self._where(), project, exc)
                        changed_ids.clear()
                        changed_keys.clear()
                        search_requests += self._search(
                            window, ["id", "key"], f"{project}: scope", scope, ids_only=True
                        )
                current = set(state.ids) - {i for i in changed_ids & set(state.ids) if i not in matched}
                before_count = self.http_requests
                count = self._count(base)
                if count is not None and count < len(current):
                    # Fewer match than known: items left, most often moved to another project (out
                    # of the scanned ones). What changed anywhere shows moves, and is read when
                    # that takes fewer requests than listing the query's ids would.
                    current = self._drop_moved(window, current, matched, listing=len(current))
                search_requests += self.http_requests - before_count
                if count != len(current):
                    logger.info(
                        "%s: %s: %s issues match, %d known; listing their ids",
                        self._where(),
                        project,
                        count if count is not None else "?",
                        len(current),
                    )
                    current, used = self._matching_ids(base, project)
                    search_requests += used

            def add(page: list[Any]) -> None:
                for key, issue in mapped(page):
                    if issue is not None:
                        state.issues[key] = issue

            # Matched but never seen (ids of skipped items are known too, so they are not asked for
            # again until they change): fetch them by id, 100 per request.
            # An id deleted since it was listed makes Jira refuse its group: the rest are asked again.
            missing = sorted(current - set(state.ids), key=lambda i: (len(i), i))
            search_requests += self._search_each(
                missing,
                lambda chunk: base.and_(f"id in ({', '.join(chunk)})").text(),
                fields,
                f"{project}: missed",
                add,
            )
            # Keep an item only while its id is matched, under the key it was last seen with (so a
            # moved issue's old key goes).
            live_keys = {key for issue_id, key in state.ids.items() if issue_id in current}
            state.issues = {
                key: issue
                for key, issue in sorted(state.issues.items(), key=lambda kv: _rank_key(kv[1]))
                if key in live_keys
            }
            state.ids = {issue_id: key for issue_id, key in state.ids.items() if issue_id in current}
            if changed_keys is None:
                # Cloud, the query's ids listed directly: what changed in the projects of outside
                # blockers, statuses included, in one search (100 a page), instead of every outside
                # blocker's status (one search per 100 of them) on every sync.
                search_requests += self._scan_blocker_changes(state, project, window)
            else:
                search_requests += self._refresh_blockers(state, project, changed_keys)
        state.last_sync = started
        logger.info(
            "%s: %s sync of %s: %d issues, %d skipped, %d requests",
            self._where(),
            "incremental" if incremental else "full",
            project,
            len(state.issues),
            len(skipped),
            self.http_requests - before,
        )
        return FetchResult(
            issues=list(state.issues.values()),
            skipped=tuple(skipped),
            full=not incremental,
            synced_at=started,
            requests=self.http_requests - before,
            extra={
                "search_requests": search_requests,
                "discovery_requests": discovery,
                "deployment": "cloud" if self._cloud else "datacenter",
            },
        )

    def _search_each(
        self,
        values: Sequence[str],
        jql_for: Callable[[list[str]], str],
        fields: Sequence[str],
        label: str,
        each_page: Callable[[list[Any]], None],
    ) -> int:
        """Search for ``values`` (keys or ids) 100 at a time; returns the requests made.

        Jira refuses a whole ``key in (...)`` / ``id in (...)`` search (HTTP 400) when one value
        names no issue (deleted since it was learnt): the search is repeated without the values the
        error names, or, when it names none of them, split in halves, so one gone issue costs no
        more than itself. A value refused on its own is left out (with a warning).
        """
        requests_before = self.http_requests
        pending = list(_chunks(list(values), CLOUD_PAGE_SIZE))
        while pending:
            chunk = pending.pop()
            try:
                self._search(jql_for(chunk), fields, label, each_page)
            except _RejectedError as exc:
                named = set(_REFUSED_VALUE.findall(str(exc))) & set(chunk)
                rest = [value for value in chunk if value not in named]
                if named:
                    logger.warning(
                        "%s: %s: no longer exist: %s", self._where(), label, ", ".join(sorted(named))
                    )
                    if rest:
                        pending.append(rest)
                elif len(chunk) > 1:
                    pending.extend([chunk[: len(chunk) // 2], chunk[len(chunk) // 2 :]])
                else:
                    logger.warning("%s: %s: %s left out: %s", self._where(), label, chunk[0], exc)
        return self.http_requests - requests_before

    def _drop_moved(self, window: str, current: set[str], matched: set[str], *, listing: int) -> set[str]:
        """``current`` without the ids that changed anywhere in ``window`` and no longer match.

        Gives up (returns ``current`` unchanged) once the scan would take as many requests as
        listing ``listing`` ids does, so it never costs more than what it saves.
        """
        per_page = self.source.page_size or (CLOUD_ID_PAGE_SIZE if self._cloud else DC_PAGE_SIZE)
        budget = math.ceil(listing / per_page) - 1
        if budget < 1:
            return current
        changed: set[str] = set()
        for pages, (issues, total) in enumerate(self._pages(window, ["id"], ids_only=True)):
            if pages >= budget or (total is not None and math.ceil(total / per_page) > budget):
                return current
            changed.update(_ids(issues))
        return current - {i for i in changed if i not in matched}

    def _scope_projects(
        self, state: ProjectSyncState, project: str, *, default: bool, issues: bool = True
    ) -> list[str]:
        """The projects whose changes an incremental sync scans (not the whole site).

        The default query's own project (as configured), else (with ``issues``) the projects of
        the issues the query matched, plus the projects of blockers outside the synced set (their
        changes decide which blocker statuses are asked for again).
        """
        found: list[str] = [project] if default else []
        keys = (list(state.ids.values()) if issues else []) + [
            link.target
            for issue in state.issues.values()
            for link in issue.links
            if link.kind is LinkKind.BLOCKED_BY and link.target not in state.issues
        ]
        for key in keys:
            owner = key.rpartition("-")[0]
            if owner and owner not in found and not (default and owner.upper() == project.upper()):
                found.append(owner)
        return found

    def _scan_blocker_changes(self, state: ProjectSyncState, project: str, window: str) -> int:
        """Statuses of outside blockers that changed in ``window``, from one scan of their projects.

        A blocker's status changes only with its own 'updated', so the changes in its project since
        the last sync hold every new status (a reopened blocker known done included). Falls back to
        asking every outside blocker when a project is refused (gone, renamed). Returns requests.
        """
        outside = _outside_blockers(state)
        if not outside:
            return 0
        projects = sorted({key.rpartition("-")[0] for key in outside if "-" in key})
        fresh: dict[str, StatusCategory] = {}

        def read(page: list[Any]) -> None:
            fresh.update((k, v) for k, v in _statuses(page).items() if k in outside)

        scan = f"project in ({', '.join(jql_string(p) for p in projects)}) AND {window}"
        try:
            used = self._search(scan, ["status"], f"{project}: blocker changes", read)
        except _RejectedError as exc:
            logger.warning("%s: %s: blocker changes not scanned: %s", self._where(), project, exc)
            return self._refresh_blockers(state, project, None)
        if fresh:
            state.issues = {key: _with_blockers(issue, fresh) for key, issue in state.issues.items()}
        return used

    def _refresh_blockers(self, state: ProjectSyncState, project: str, changed: set[str] | None) -> int:
        """Bring blockers' statuses up to date when the blocker is not in the synced set.

        A link carries its target's status as of the last time the *blocked* issue was fetched;
        resolving the blocker does not touch the blocked issue's 'updated', so an incremental sync
        never refreshes it. Blockers in the backlog are current already (the rule prefers their own
        record); the rest get their status read in one ``key in (...)`` search per 100 keys:
        those in ``changed`` when the sync knows what changed, known-done ones included (a
        blocker's status changes only with its own 'updated', and every change since the last sync
        falls in this sync's window, a reopening too), else all not known done. Returns the
        requests made.
        """
        stale = sorted(
            {
                link.target
                for issue in state.issues.values()
                for link in issue.links
                if link.kind is LinkKind.BLOCKED_BY
                and link.target not in state.issues
                # A blocker known done is asked again only when it changed (reopened, say).
                and (
                    link.target in changed
                    if changed is not None
                    else link.target_status_category is not StatusCategory.DONE
                )
            }
        )
        fresh: dict[str, StatusCategory] = {}

        def read(page: list[Any]) -> None:
            fresh.update(_statuses(page))

        requests_made = self._search_each(
            stale,
            lambda chunk: f"key in ({', '.join(jql_string(key) for key in chunk)})",
            ["status"],
            f"{project}: blocker statuses",
            read,
        )
        if fresh:
            state.issues = {key: _with_blockers(issue, fresh) for key, issue in state.issues.items()}
        return requests_made

    # --- comments ------------------------------------------------------------------------------

    def _comment_payload(self, body: str, marker: str) -> dict[str, Any]:
        rendered: Any = to_adf(body, marker) if self._cloud else to_wiki(body, marker)
        return {
            "body": rendered,
            "properties": [{"key": PROPERTY_KEY, "value": {"marker": marker, "v": 1}}],
        }

    def add_comment(self, issue_key: str, body: str, *, marker: str) -> str:
        """Post ``body`` on the issue tagged with ``marker``; return the comment id.

        A POST is not idempotent: when a try fails in a way that leaves its outcome unknown (dropped
        connection, timeout, any 5xx including 503), the issue's comments are checked for the
        marker before posting again. Only a 429 is repeated without checking (by the retry runner).
        """
        check_marker(marker)
        self._connect()
        payload = self._comment_payload(body, marker)
        action = f"adding a comment to {issue_key}"
        attempts = self.source.retry_attempts
        for attempt in range(1, attempts + 1):
            try:
                created = self._runner.call(
                    f"{self._where()}: {action}",
                    lambda: self._send("POST", f"issue/{_path(issue_key)}/comment", payload),
                    idempotent=False,
                )
            except (JIRAError, requests.RequestException) as exc:
                status = status_of(exc)
                unknown = is_connection_failure(exc) or (status is not None and status >= 500)
                if not unknown or attempt == attempts:
                    raise self._error(exc, action) from None
                # A 503 may name its wait; honour it before looking, as for any rate limit.
                asked = self._runner.policy.server_delay(headers_of(exc), self._clock())
                delay = asked if asked is not None else self._runner.policy.backoff(attempt)
                if delay > self._runner.policy.max_server_wait_seconds:
                    raise self._error(exc, action) from None
                logger.warning(
                    "%s: %s: outcome unknown (%s); checking before posting again in %.2f s",
                    self._where(),
                    action,
                    f"HTTP {status}" if status else type(exc).__name__,
                    delay,
                )
                self._runner.sleep(delay)
                found = self.find_comment(issue_key, marker)
                if found is not None:
                    logger.info(
                        "%s: %s: the earlier try had succeeded (comment %s)",
                        self._where(),
                        action,
                        found,
                    )
                    return found
                continue
            if not isinstance(created, Mapping) or not created.get("id"):
                raise ConnectorError(f"{self._where()}: {action}: Jira's answer has no comment id")
            return str(created["id"])
        raise ConnectorError(f"{self._where()}: {action}: gave up")  # pragma: no cover - loop always returns

    def update_comment(self, issue_key: str, comment_id: str, body: str, *, marker: str) -> None:
        """Replace the bot's own comment's body in place, notifying no watchers (a PUT is safe to repeat)."""
        check_marker(marker)
        self._connect()
        payload = self._comment_payload(body, marker)
        action = f"updating comment {comment_id} on {issue_key}"
        # An id from elsewhere (a stale store, a bug) must not let the bot rewrite a person's
        # comment, which an account allowed to "edit all comments" could do: check the author first.
        current = self._get(
            f"issue/{_path(issue_key)}/comment/{_path(comment_id)}", None, f"reading comment {comment_id}"
        )
        if not isinstance(current, Mapping) or not self._by_bot(current):
            raise ConnectorError(
                f"{self._where()}: comment {comment_id} on {issue_key} was not written by the bot; "
                "not updating it"
            )
        try:
            self._runner.call(
                f"{self._where()}: {action}",
                lambda: self._send(
                    "PUT",
                    f"issue/{_path(issue_key)}/comment/{_path(comment_id)}",
                    payload,
                    {"notifyUsers": "false"},
                ),
            )
        except (JIRAError, requests.RequestException) as exc:
            raise self._error(exc, action) from None

    def _myself(self) -> dict[str, str]:
        """Who the bot is, to tell its comments from people's (fetched once per connector)."""
        if self._me is not None:
            return self._me
        me = self._get("myself", None, "reading the bot's own user")
        wanted = ("accountId",) if self._cloud else ("key", "name")
        found = {k: str(me[k]) for k in wanted if isinstance(me, Mapping) and me.get(k)}
        if not found:
            raise ConnectorError(f"{self._where()}: the answer to /myself names no {' or '.join(wanted)}")
        self._me = found
        return found

    def _by_bot(self, comment: Mapping[str, Any]) -> bool:
        author = comment.get("author")
        if not isinstance(author, Mapping):
            return False
        # Cloud users have only an accountId; on Data Center the key survives a rename, the name may not.
        return any(author.get(k) is not None and str(author.get(k)) == v for k, v in self._myself().items())

    def find_comment(self, issue_key: str, marker: str) -> str | None:
        """The id of the bot's own comment tagged ``marker`` (by property, else by the text footer).

        Comments by anyone else never match, even when they quote the marker, so an update cannot
        overwrite a person's comment.
        """
        check_marker(marker)
        self._connect()
        start = 0
        while True:
            page = self._get(
                f"issue/{_path(issue_key)}/comment",
                {
                    "startAt": start,
                    "maxResults": COMMENT_PAGE_SIZE,
                    "orderBy": "-created",
                    "expand": "properties",
                },
                f"listing comments of {issue_key}",
            )
            comments = page.get("comments") if isinstance(page, Mapping) else None
            if not isinstance(comments, list):
                raise ConnectorError(f"{self._where()}: comments of {issue_key}: no 'comments' array")
            for comment in comments:
                if (
                    isinstance(comment, Mapping)
                    and (property_has_marker(comment, marker) or body_has_marker(comment.get("body"), marker))
                    and self._by_bot(comment)
                ):
                    return str(comment.get("id"))
            start += len(comments)
            total = page.get("total")
            if not comments or not isinstance(total, int) or start >= total:
                return None


def _path(segment: str) -> str:
    """One URL path segment; an issue key or id from elsewhere cannot reach another endpoint."""
    return quote(segment, safe="")


# How Jira names a missing issue in a refused search: "An issue with key 'OPS-7' does not exist
# for field 'key'.", "The issue key 'OPS-7' for field 'key' is invalid.", "A value with ID '10071'
# does not exist for the field 'id'."
_REFUSED_VALUE = re.compile(r"(?:key|ID) '([^']+)'")


class _RejectedError(ConnectorError):
    """Jira refused the request as invalid (HTTP 400), e.g. JQL naming an issue that is gone."""


def _with_blockers(issue: Issue, fresh: Mapping[str, StatusCategory]) -> Issue:
    links = tuple(
        replace(link, target_status_category=fresh[link.target])
        if link.kind is LinkKind.BLOCKED_BY and link.target in fresh
        else link
        for link in issue.links
    )
    return issue if links == issue.links else replace(issue, links=links)


def _outside_blockers(state: ProjectSyncState) -> set[str]:
    """Keys of blockers that are not in the synced set (their status is not read with it)."""
    return {
        link.target
        for issue in state.issues.values()
        for link in issue.links
        if link.kind is LinkKind.BLOCKED_BY and link.target not in state.issues
    }


def _statuses(page: Sequence[Any]) -> dict[str, StatusCategory]:
    """Key -> status category of each issue on a search page read with ``fields=status``."""
    out: dict[str, StatusCategory] = {}
    for raw in page:
        fields = raw.get("fields") if isinstance(raw, Mapping) else None
        status = fields.get("status") if isinstance(fields, Mapping) else None
        category = status.get("statusCategory") if isinstance(status, Mapping) else None
        found = StatusCategory.from_jira_key(category.get("key") if isinstance(category, Mapping) else None)
        if found is not None and isinstance(raw, Mapping) and raw.get("key"):
            out[str(raw["key"])] = found
    return out


def _ids(page: Sequence[Any]) -> set[str]:
    return {str(raw["id"]) for raw in page if isinstance(raw, Mapping) and raw.get("id")}


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _rank_key(issue: Issue) -> tuple[int, str]:
    return (0, issue.rank) if issue.rank else (1, "")
