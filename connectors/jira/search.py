"""Read every issue a JQL search matches: Cloud by ``nextPageToken``, Data Center by ``startAt``.

Cloud (``/rest/api/3/search/jql``) follows the page token to the end. Data Center
(``/rest/api/2/search``) pages by offset, honours a page cap smaller than asked, steps back when issues
leave the results between pages, and reads result sets beyond the 10,000-result window by key ranges,
project by project (Jira compares keys within the named key's project only). Pages are handed to the
caller as they arrive (never kept here) and reported to the progress callback once each.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from connectors.base import ConnectorError, Progress, ProgressCallback
from connectors.jira.client import JiraClient, RejectedError
from connectors.jira.jql import JqlQuery, jql_string
from refinebot.config import JiraSourceConfig
from refinebot.models import StatusCategory

logger = logging.getLogger(__name__)

CLOUD_PAGE_SIZE = 100  # the most search/jql returns per page when fields are requested
CLOUD_ID_PAGE_SIZE = 5000  # ...and when only ids are requested
STAMP_FIELDS = ("id", "key", "updated")  # an issue's identity and when it last changed, nothing more
# A JQL this long goes in a POST body (search/jql takes both): a long ``id not in (...)`` would
# make a URL that servers and proxies refuse (8 KiB is a common limit).
LONG_JQL = 2000
DC_PAGE_SIZE = 1000  # jira.search.views.default.max; servers may cap lower, which paging honours
DC_RESULT_WINDOW = 10_000  # jira.search.platform.max.result.window: startAt + maxResults beyond fails
_PROGRESS_LOG_EVERY = 10  # pages between one-line progress logs (a log file shows long syncs move)

# How Jira names a missing issue in a refused search: "An issue with key 'OPS-7' does not exist
# for field 'key'.", "The issue key 'OPS-7' for field 'key' is invalid.", "A value with ID '10071'
# does not exist for the field 'id'."
_REFUSED_VALUE = re.compile(r"(?:key|ID) '([^']+)'")

Page = list[Any]
EachPage = Callable[[Page], None]
Stamps = dict[str, tuple[str, str]]  # issue id -> (key, 'updated' as Jira wrote it)


def ids_of(page: Sequence[Any]) -> set[str]:
    """The issue ids on a search page."""
    return {str(raw["id"]) for raw in page if isinstance(raw, Mapping) and raw.get("id")}


def keys_of(page: Sequence[Any]) -> set[str]:
    """The issue keys on a search page."""
    return {str(raw["key"]) for raw in page if isinstance(raw, Mapping) and raw.get("key")}


def statuses_of(page: Sequence[Any]) -> dict[str, StatusCategory]:
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


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class Searcher:
    """JQL searches over one ``JiraClient``, paged the way the deployment needs."""

    def __init__(self, client: JiraClient, source: JiraSourceConfig, progress: ProgressCallback) -> None:
        self.client = client
        self.source = source
        self.progress = progress
        self.reordered = False  # a Data Center search was read in key order (too many for offsets)
        self._final = True  # the Cloud page just yielded was the last one

    def id_page_size(self) -> int:
        """How many ids one ids-only page holds."""
        return self.source.page_size or (CLOUD_ID_PAGE_SIZE if self.client.is_cloud else DC_PAGE_SIZE)

    def search(
        self, jql: str, fields: Sequence[str], label: str, each_page: EachPage, *, ids_only: bool = False
    ) -> int:
        """Hand each page to ``each_page`` as it arrives (pages are not kept); return requests made."""
        before = self.client.requests
        items = 0
        total: int | None = None
        for pages, (issues, total) in enumerate(self.pages(jql, fields, ids_only=ids_only), start=1):
            each_page(issues)
            items += len(issues)
            self.progress(Progress(label, items, total))
            if pages % _PROGRESS_LOG_EVERY == 0:
                of = f" of {total}" if total is not None else ""
                logger.info("%s: %d%s issues in %d pages", label, items, of, pages)
        self.progress(Progress(label, items, total if total is not None else items, finished=True))
        return self.client.requests - before

    def search_each(
        self,
        values: Sequence[str],
        jql_for: Callable[[list[str]], str],
        fields: Sequence[str],
        label: str,
        each_page: EachPage,
    ) -> int:
        """Search for ``values`` (keys or ids) 100 at a time; returns the requests made.

        Jira refuses a whole ``key in (...)`` / ``id in (...)`` search (HTTP 400) when one value
        names no issue (deleted since it was learnt): the search is repeated without the values the
        error names, or, when it names none of them, split in halves, so one gone issue costs no
        more than itself. A value refused on its own is left out (with a warning).
        """
        before = self.client.requests
        pending = list(_chunks(list(values), CLOUD_PAGE_SIZE))
        while pending:
            chunk = pending.pop()
            try:
                self.search(jql_for(chunk), fields, label, each_page)
            except RejectedError as exc:
                named = set(_REFUSED_VALUE.findall(str(exc))) & set(chunk)
                rest = [value for value in chunk if value not in named]
                if named:
                    logger.warning(
                        "%s: %s: no longer exist: %s", self.client.where, label, ", ".join(sorted(named))
                    )
                    if rest:
                        pending.append(rest)
                elif len(chunk) > 1:
                    pending.extend([chunk[: len(chunk) // 2], chunk[len(chunk) // 2 :]])
                else:
                    logger.warning("%s: %s: %s left out: %s", self.client.where, label, chunk[0], exc)
        return self.client.requests - before

    def stamps(self, jql: str, label: str) -> tuple[Stamps | None, int]:
        """Id, key and 'updated' of every issue ``jql`` matches (Cloud), and the requests made.

        Asked for in pages as big as ids-only ones. Cloud does not publish how many such pages hold;
        when the first page holds no more than a full-field page would (and more follow), listing
        them would cost as much as reading the issues: returns None after that one request, and the
        caller reads them the usual way.
        """
        before = self.client.requests
        found: Stamps = {}
        asked = self.source.page_size or CLOUD_ID_PAGE_SIZE
        for number, (issues, _) in enumerate(self._cloud_pages(jql, STAMP_FIELDS, ids_only=True), start=1):
            if number == 1 and not self._final and len(issues) < asked and len(issues) <= CLOUD_PAGE_SIZE:
                logger.info(
                    "%s: %s: pages of ids and 'updated' hold only %d issues; reading changes in full",
                    self.client.where,
                    label,
                    len(issues),
                )
                return None, self.client.requests - before
            for raw in issues:
                fields = raw.get("fields") if isinstance(raw, Mapping) else None
                updated = fields.get("updated") if isinstance(fields, Mapping) else None
                if isinstance(raw, Mapping) and raw.get("id") and raw.get("key"):
                    found[str(raw["id"])] = (str(raw["key"]), str(updated or ""))
        return found, self.client.requests - before

    def matching_ids(self, query: JqlQuery, label: str) -> tuple[set[str], int]:
        """The ids of every issue ``query`` matches now, and the requests that took."""
        ids: set[str] = set()
        used = self.search(query.text(), ["id"], label, lambda page: ids.update(ids_of(page)), ids_only=True)
        return ids, used

    def count(self, query: JqlQuery) -> int | None:
        """How many issues match ``query`` now (None if the server would not say)."""
        if not self.client.is_cloud:
            # Data Center: a search for no issues still reports the total.
            page = self.client.get(
                "search",
                {"jql": query.where, "startAt": 0, "maxResults": 0, "fields": "id"},
                "counting issues",
            )
            total = page.get("total") if isinstance(page, Mapping) else None
            return total if isinstance(total, int) else None
        answer = self.client.post_read("search/approximate-count", {"jql": query.where}, "counting issues")
        count = answer.get("count") if isinstance(answer, Mapping) else None
        return count if isinstance(count, int) else None

    def key_exists(self, key: str) -> bool:
        """Whether issue ``key`` exists (Jira refuses ``key = "X"`` with a 400 when it does not)."""
        try:
            self.client.get(
                "search",
                {"jql": f"key = {jql_string(key)}", "startAt": 0, "maxResults": 0, "fields": "id"},
                f"checking that {key} exists",
            )
        except RejectedError:
            return False
        return True

    # --- paging --------------------------------------------------------------------------------

    def pages(
        self, jql: str, fields: Sequence[str], *, ids_only: bool = False
    ) -> Iterator[tuple[Page, int | None]]:
        """Each page of issues matching ``jql`` with its total (Data Center) or None (Cloud)."""
        if self.client.is_cloud:
            yield from self._cloud_pages(jql, fields, ids_only=ids_only)
        else:
            yield from self._dc_pages(jql, fields)

    def _page_issues(self, page: Any) -> Page:
        if not isinstance(page, Mapping) or not isinstance(page.get("issues"), list):
            raise ConnectorError(f"{self.client.where}: a search response has no 'issues' array")
        return list(page["issues"])

    def _cloud_pages(self, jql: str, fields: Sequence[str], *, ids_only: bool) -> Iterator[tuple[Page, None]]:
        size = self.source.page_size or (CLOUD_ID_PAGE_SIZE if ids_only else CLOUD_PAGE_SIZE)
        token: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {"jql": jql, "maxResults": size, "fields": ",".join(fields)}
            if token:
                params["nextPageToken"] = token
            if len(jql) > LONG_JQL:
                body = dict(params, fields=list(fields))
                page = self.client.post_read("search/jql", body, "searching issues")
            else:
                page = self.client.get("search/jql", params, "searching issues")
            issues = self._page_issues(page)
            token = page.get("nextPageToken")
            self._final = page.get("isLast") is True or not token
            yield issues, None
            if page.get("isLast") is True or not token:
                if page.get("isLast") is False:
                    logger.warning("%s: search page says more follow but gives no token", self.client.where)
                return
            if token in seen:
                raise ConnectorError(f"{self.client.where}: the search repeated a page token; stopping")
            seen.add(token)

    def _dc_pages(self, jql: str, fields: Sequence[str]) -> Iterator[tuple[Page, int | None]]:
        size = self.source.page_size or DC_PAGE_SIZE
        query = JqlQuery.parse(jql)
        first = True
        for issues, total, reached_window in self._dc_offset_pages(jql, fields, size):
            if first and total is not None and total > DC_RESULT_WINDOW:
                # More than offsets can reach (notes §1.2): read it all again by key ranges. The
                # caller puts the issues back into rank order.
                logger.info(
                    "%s: %d issues match, more than the %d offsets can reach; reading by key ranges",
                    self.client.where,
                    total,
                    DC_RESULT_WINDOW,
                )
                self.reordered = True
                yield from self._dc_key_range_pages(query, fields, size)
                return
            first = False
            yield issues, total
            if reached_window:
                # The results grew past the window while being read: read them by key ranges.
                self.reordered = True
                yield from self._dc_key_range_pages(query, fields, size)
                return

    def _dc_offset_pages(
        self, jql: str, fields: Sequence[str], size: int
    ) -> Iterator[tuple[Page, int | None, bool]]:
        """Pages of one Data Center search by ``startAt`` while the result window allows.

        Yields each page, its total, and whether the next page would lie beyond the window (the
        last page yielded then).
        """
        start = 0
        previous_total: int | None = None
        while True:
            asked = min(size, DC_RESULT_WINDOW - start)
            params = {"jql": jql, "startAt": start, "maxResults": asked, "fields": ",".join(fields)}
            page = self.client.get("search", params, "searching issues")
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
    ) -> Iterator[tuple[Page, int | None]]:
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
                raise ConnectorError(f"{self.client.where}: search results without issue keys")
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
            if not got_any and not self.key_exists(keys[-1]):
                # The key continued from is gone (deleted or moved meanwhile): step back, twice as
                # far each time (repeats are dropped by key), so mass deletions end quickly too.
                step = 2**step_backs
                step_backs += 1
                del keys[-step:]
                if not keys:
                    raise ConnectorError(
                        f"{self.client.where}: reading beyond the {DC_RESULT_WINDOW:,}-result window: "
                        f"cannot continue in project {project}, every key read was deleted or moved "
                        "meanwhile; try the sync again"
                    )
                continue
            done.append(project)
            project, keys, step_backs = None, [], 0

    def scan_budget(self, listing: int) -> int:
        """How many id pages a scan may take before listing ``listing`` ids would be cheaper."""
        return math.ceil(listing / self.id_page_size()) - 1
