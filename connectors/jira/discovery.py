"""Find which custom fields hold story points, sprint, rank and acceptance criteria on a site.

Ids differ per site (``customfield_10016`` on one, ``customfield_12310293`` on another), so they are
read from the board's estimation settings (Agile API) when a board is configured, else from the
field list by schema type and name. Anything set in the source config wins over what is discovered.
The result is kept in the injected ``SyncStateStore`` (with the config it was found under), so a new
connector on the same store asks nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.base import ConnectorError, SyncStateStore
from connectors.jira.client import JiraClient
from connectors.jira_json import JiraFieldMap
from refinebot.config import JiraSourceConfig

logger = logging.getLogger(__name__)

STORY_POINTS_TYPE = "com.pyxis.greenhopper.jira:jsw-story-points"
FLOAT_TYPE = "com.atlassian.jira.plugin.system.customfieldtypes:float"
SPRINT_TYPE = "com.pyxis.greenhopper.jira:gh-sprint"
RANK_TYPE = "com.pyxis.greenhopper.jira:gh-lexo-rank"
TEXTAREA_TYPE = "com.atlassian.jira.plugin.system.customfieldtypes:textarea"
EPIC_LINK_TYPE = "com.pyxis.greenhopper.jira:gh-epic-link"
# Advanced Roadmaps' "Original story points" is a number too, but not the estimate teams work with.
_NOT_POINTS = frozenset({"com.atlassian.jpo:jpo-custom-field-original-story-points"})
_POINT_NAMES = frozenset({"story points", "story point estimate"})
_AC_NAMES = frozenset({"acceptance criteria", "acceptance criterion"})


@dataclass(frozen=True, slots=True)
class FieldOverrides:
    """Field ids the admin set in the source config (None = discover)."""

    story_points: str | None = None
    sprint: str | None = None
    rank: str | None = None
    acceptance_criteria: str | None = None

    def as_mapping(self) -> dict[str, str | None]:
        """The overrides keyed like ``JiraFieldMap`` attributes."""
        return {
            "story_points": self.story_points,
            "sprint": self.sprint,
            "rank": self.rank,
            "acceptance_criteria": self.acceptance_criteria,
        }


@dataclass(frozen=True, slots=True)
class BoardHints:
    """What a board's configuration says about estimation and ranking."""

    story_points: str | None = None
    rank: str | None = None

    @classmethod
    def from_configuration(cls, config: Mapping[str, Any]) -> BoardHints:
        """Read ``GET /rest/agile/1.0/board/{id}/configuration``."""
        estimation = config.get("estimation") or {}
        field = estimation.get("field") or {} if isinstance(estimation, Mapping) else {}
        points = field.get("fieldId") if isinstance(field, Mapping) else None
        if points and not str(points).startswith("customfield_"):
            # A board estimating by time ("timeoriginalestimate", in seconds) or issue count names
            # a system field: that is no story point estimate, so discovery looks elsewhere.
            logger.info("board estimates by %s, which is not a story points field; ignored", points)
            points = None
        ranking = config.get("ranking") or {}
        rank_id = ranking.get("rankCustomFieldId") if isinstance(ranking, Mapping) else None
        return cls(
            story_points=str(points) if points else None,
            rank=f"customfield_{rank_id}" if rank_id not in (None, "") else None,
        )


def _custom_type(field: Mapping[str, Any]) -> str:
    schema = field.get("schema")
    return str(schema.get("custom") or "") if isinstance(schema, Mapping) else ""


def _schema_type(field: Mapping[str, Any]) -> str:
    schema = field.get("schema")
    return str(schema.get("type") or "") if isinstance(schema, Mapping) else ""


def _name(field: Mapping[str, Any]) -> str:
    return " ".join(str(field.get("name") or "").lower().split())


def discover_field_map(
    fields: Sequence[Mapping[str, Any]],
    overrides: FieldOverrides,
    board: BoardHints | None = None,
) -> JiraFieldMap:
    """The field map for a site from its ``/field`` list, optional board hints and config overrides.

    When several fields qualify, all are kept in a fixed order (board, then the Jira Software
    estimate
    type, then numbers named "Story Points"): the mapping reads the first one that has a value.
    """
    custom = [f for f in fields if isinstance(f, Mapping) and f.get("id")]
    points: list[str] = []
    if board and board.story_points:
        points.append(board.story_points)
    points += [str(f["id"]) for f in custom if _custom_type(f) == STORY_POINTS_TYPE]
    points += [
        str(f["id"])
        for f in custom
        if _custom_type(f) not in _NOT_POINTS
        and _custom_type(f) != STORY_POINTS_TYPE
        and _schema_type(f) == "number"
        and _name(f) in _POINT_NAMES
    ]
    sprint = [str(f["id"]) for f in custom if _custom_type(f) == SPRINT_TYPE]
    rank: list[str] = [board.rank] if board and board.rank else []
    rank += [str(f["id"]) for f in custom if _custom_type(f) == RANK_TYPE]
    ac = [
        str(f["id"])
        for f in custom
        if _name(f) in _AC_NAMES and (_custom_type(f) == TEXTAREA_TYPE or _schema_type(f) == "string")
    ]
    epic = [str(f["id"]) for f in custom if _custom_type(f) == EPIC_LINK_TYPE]

    discovered = JiraFieldMap(
        story_points=tuple(dict.fromkeys(points)),
        sprint=tuple(dict.fromkeys(sprint)),
        rank=tuple(dict.fromkeys(rank)),
        acceptance_criteria=tuple(dict.fromkeys(ac)),
        epic_link=tuple(dict.fromkeys(epic)),
    )
    if len(discovered.story_points) > 1:
        logger.warning(
            "several story point fields found (%s); the first with a value is used per issue; "
            "set story_points_field in the source config to pick one",
            ", ".join(discovered.story_points),
        )
    if not discovered.story_points and not overrides.story_points:
        logger.warning("no story points field found; set story_points_field in the source config")
    return discovered.with_overrides(overrides.as_mapping())


def overrides_of(source: JiraSourceConfig) -> FieldOverrides:
    """The field ids the source config sets."""
    return FieldOverrides(
        story_points=source.story_points_field,
        sprint=source.sprint_field,
        rank=source.rank_field,
        acceptance_criteria=source.acceptance_criteria_field,
    )


def field_map_to_json(field_map: JiraFieldMap) -> dict[str, list[str]]:
    """A field map as JSON (for the state store and for fingerprints)."""
    return {
        "story_points": list(field_map.story_points),
        "sprint": list(field_map.sprint),
        "rank": list(field_map.rank),
        "acceptance_criteria": list(field_map.acceptance_criteria),
        "epic_link": list(field_map.epic_link),
    }


def field_map_from_json(value: Any) -> JiraFieldMap | None:
    """The field map saved by ``field_map_to_json``; None when the value is not one."""
    if not isinstance(value, Mapping):
        return None
    names = ("story_points", "sprint", "rank", "acceptance_criteria", "epic_link")
    lists: list[tuple[str, ...]] = []
    for name in names:
        ids = value.get(name)
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return None
        lists.append(tuple(ids))
    return JiraFieldMap(*lists)


class FieldDiscovery:
    """The site's field map: from the store when found under the same config, else asked and stored."""

    def __init__(self, client: JiraClient, source: JiraSourceConfig, store: SyncStateStore, key: str) -> None:
        self.client = client
        self.source = source
        self.store = store
        self.key = key
        self._field_map: JiraFieldMap | None = None

    def _config(self) -> dict[str, Any]:
        # What the discovered map depends on besides the site: a changed override or board is found again.
        return {"overrides": overrides_of(self.source).as_mapping(), "board_id": self.source.board_id}

    def field_map(self) -> JiraFieldMap:
        """Where story points, sprint, rank and acceptance criteria live."""
        if self._field_map is not None:
            return self._field_map
        saved = self.store.load(self.key)
        if isinstance(saved, Mapping) and saved.get("config") == self._config():
            cached = field_map_from_json(saved.get("fields"))
            if cached is not None:
                self._field_map = cached
                return cached
        found = self._discover()
        self.store.save(self.key, {"config": self._config(), "fields": field_map_to_json(found)})
        self._field_map = found
        return found

    def _discover(self) -> JiraFieldMap:
        board = None
        if self.source.board_id is not None:
            config = self.client.get(
                f"board/{self.source.board_id}/configuration",
                None,
                f"reading board {self.source.board_id}'s configuration",
                agile=True,
            )
            if isinstance(config, Mapping):
                board = BoardHints.from_configuration(config)
        fields = self.client.get("field", None, "listing fields")
        if not isinstance(fields, list):
            raise ConnectorError(f"{self.client.where}: the field list is not a JSON array")
        field_map = discover_field_map(fields, overrides_of(self.source), board)
        logger.info(
            "%s: fields: story points %s, sprint %s, rank %s, acceptance criteria %s",
            self.client.where,
            ", ".join(field_map.story_points) or "-",
            ", ".join(field_map.sprint) or "-",
            ", ".join(field_map.rank) or "-",
            ", ".join(field_map.acceptance_criteria) or "-",
        )
        return field_map
