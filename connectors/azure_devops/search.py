"""Find and read work items: WIQL for ids (paged by id under the 20,000 cap), then batches of 200.

Also builds the WIQL condition of a fetch (project, area path, the configured query or the default
open backlog) with every value quoted, so a name holding quotes cannot change the query.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import Any

from connectors.azure_devops.client import AdoClient, ResultCapError
from connectors.azure_devops.wire import get_work_items_batch_json, query_ids_json
from connectors.base import ConnectorError, Progress, ProgressCallback, no_progress
from refinebot.config import AzureDevOpsSourceConfig

logger = logging.getLogger(__name__)

BATCH_SIZE = 200  # VS403474 above this
STATE_FIELDS = ["System.Id", "System.WorkItemType", "System.State", "System.TeamProject"]


def wiql_string(value: str) -> str:
    """A WIQL string literal, quotes doubled: a name with quotes cannot change the query."""
    if any(ch in value for ch in "\r\n\x00"):
        raise ConnectorError(f"WIQL value {value!r} contains a line break or NUL")
    return "'" + value.replace("'", "''") + "'"


_WIQL_TOKENS = re.compile(
    r"'(?:[^']|'')*'|\[[^\]]*\]|\b(?:where|order\s+by|asof|from)\b|[^'\[]", re.IGNORECASE
)


def wiql_condition(query: str) -> str:
    """A configured query's condition: a bare condition as is, or the WHERE clause of a WIQL."""
    text = query.strip()
    if not re.match(r"select\b", text, re.IGNORECASE):
        return text
    marks: dict[str, tuple[int, int]] = {}
    for match in _WIQL_TOKENS.finditer(text):
        word = re.sub(r"\s+", " ", match.group(0).lower())
        if word in ("where", "order by", "asof", "from") and word not in marks:
            marks[word] = (match.start(), match.end())
    if "from" in marks:
        source = text[marks["from"][1] :].split(None, 1)[0] if text[marks["from"][1] :].strip() else ""
        if source.lower() != "workitems":
            raise ConnectorError(
                f"query must select FROM WorkItems (link queries are not supported): {query!r}"
            )
    if "where" not in marks:
        return ""
    end = min(
        (marks[k][0] for k in ("order by", "asof") if k in marks and marks[k][0] > marks["where"][0]),
        default=len(text),
    )
    return text[marks["where"][1] : end].strip()


def backlog_condition(
    source: AzureDevOpsSourceConfig, project: str, query: str | None, done_states: Sequence[str]
) -> str:
    """The WIQL condition of one fetch: the project (and area), then the query or the open backlog."""
    parts = [f"[System.TeamProject] = {wiql_string(project)}"]
    if source.area_path:
        parts.append(f"[System.AreaPath] UNDER {wiql_string(source.area_path)}")
    if query and query.strip():
        condition = wiql_condition(query)
        if condition:
            parts.append(f"({condition})")
    else:
        parts.append(
            "([System.WorkItemType] IN GROUP 'Microsoft.RequirementCategory' "
            "OR [System.WorkItemType] IN GROUP 'Microsoft.BugCategory')"
        )
        if done_states:
            parts.append(f"[System.State] NOT IN ({', '.join(wiql_string(s) for s in done_states)})")
    return " AND ".join(parts)


def chunks(values: Sequence[int], size: int) -> Iterator[list[int]]:
    """``values`` in consecutive lists of at most ``size``."""
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


class WorkItemSearch:
    """WIQL and batch reads for one organisation, through the client's guard."""

    def __init__(self, client: AdoClient, progress: ProgressCallback = no_progress) -> None:
        self.client = client
        self.progress = progress

    def ids(self, project: str, condition: str, *, time_precision: bool = False) -> list[int]:
        """Every id matching ``condition`` in id order, paged by id so no query passes the cap."""
        from azure.devops.v7_1.work_item_tracking.models import Wiql

        wit = self.client.clients().wit
        page_size = self.client.source.wiql_page_size
        ids: list[int] = []
        last = 0
        while True:
            text = (
                "SELECT [System.Id] FROM WorkItems WHERE "
                f"({condition}) AND [System.Id] > {last} ORDER BY [System.Id]"
            )
            try:
                # The ids straight from the answer's JSON (wire.py), not 20,000 msrest references.
                page = self.client.call(
                    f"WIQL query of project {project!r}",
                    partial(
                        query_ids_json,
                        wit,
                        Wiql(query=text),
                        project,
                        time_precision=time_precision or None,
                        top=page_size,
                    ),
                    project=project,
                    purpose="search",
                )
            except ResultCapError:
                if page_size <= 1:
                    raise ConnectorError(
                        f"{self.client.where()}: WIQL result cap hit even for one item"
                    ) from None
                page_size = max(1, page_size // 2)  # a server that ignores $top: smaller windows
                logger.warning(
                    "%s: VS402337 from %s; retrying with pages of %d", self.client.name, project, page_size
                )
                continue
            ids.extend(page)
            if len(page) < page_size or not page:
                return ids
            last = page[-1]

    def items(self, project: str, ids: Sequence[int], *, scoped: bool = True) -> dict[int, dict[str, Any]]:
        """Work items with relations, 200 per request; ids the server omits are dropped.

        ``scoped`` False leaves the project out of the route (an outside blocker may live elsewhere).
        """
        from azure.devops.v7_1.work_item_tracking.models import WorkItemBatchGetRequest

        wit = self.client.clients().wit
        wanted = list(dict.fromkeys(ids))
        found: dict[int, dict[str, Any]] = {}
        for done, chunk in enumerate(chunks(wanted, BATCH_SIZE), start=1):
            request = WorkItemBatchGetRequest(ids=chunk, expand="Relations", error_policy="Omit")
            # The answer's JSON as sent (wire.py): msrest's models cost most of a fetch's time.
            items = self.client.call(
                f"work items batch of project {project!r}",
                partial(get_work_items_batch_json, wit, request, project=project if scoped else None),
                project=project,
                purpose="search",
            )
            for raw in items:
                found[int(raw["id"])] = raw
            self.progress(
                Progress("work items", min(done * BATCH_SIZE, len(wanted)), len(wanted), finished=False)
            )
        return found

    def states(self, project: str, ids: Sequence[int]) -> list[Mapping[str, Any]]:
        """Id, type, state and project of each work item (blockers' states), 200 per request."""
        from azure.devops.v7_1.work_item_tracking.models import WorkItemBatchGetRequest

        wit = self.client.clients().wit
        found: list[Mapping[str, Any]] = []
        for chunk in chunks(sorted(ids), BATCH_SIZE):
            # The project segment is left out: a predecessor may live in another project.
            request = WorkItemBatchGetRequest(ids=chunk, fields=STATE_FIELDS, error_policy="Omit")
            found.extend(
                self.client.call(
                    "states of linked work items",
                    partial(get_work_items_batch_json, wit, request),
                    project=project,
                    purpose="search",
                )
            )
        return found
