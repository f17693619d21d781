"""The project's process decides effort and order fields and state categories; it is kept in the store.

The real connector and the real ``azure-devops`` SDK over HTTP against the session's fake organisation
(each test in its own project); request counts come from the fake's log of what crossed the wire.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.base import JsonDirSyncStateStore, MemorySyncStateStore
from refinebot.models import IssueType, StatusCategory
from tests.connectors.azure_devops.conftest import ConnectorFactory, Sleeps
from tests.fakes.ado_server import FakeAzureDevOps, of_kind

DEP_REVERSE = "System.LinkTypes.Dependency-Reverse"
DEP_FORWARD = "System.LinkTypes.Dependency-Forward"


@pytest.mark.parametrize(
    ("process", "effort_field", "order_field", "states", "expected"),
    [
        (
            "Agile",
            "Microsoft.VSTS.Scheduling.StoryPoints",
            "Microsoft.VSTS.Common.StackRank",
            ["New", "Active", "Resolved", "Closed", "Removed"],
            # Resolved (code done, not verified) is in progress: boards show it so, and it is still open.
            [StatusCategory.TODO, StatusCategory.IN_PROGRESS, StatusCategory.IN_PROGRESS],
        ),
        (
            "Scrum",
            "Microsoft.VSTS.Scheduling.Effort",
            "Microsoft.VSTS.Common.BacklogPriority",
            ["Approved", "Committed", "Done", "Removed"],
            [StatusCategory.TODO, StatusCategory.IN_PROGRESS],
        ),
        (
            "CMMI",
            "Microsoft.VSTS.Scheduling.Size",
            "Microsoft.VSTS.Common.StackRank",
            ["Proposed", "Active", "Resolved", "Closed"],
            [StatusCategory.TODO, StatusCategory.IN_PROGRESS, StatusCategory.IN_PROGRESS],
        ),
    ],
)
def test_process_decides_effort_order_and_state_categories(
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
    process: str,
    effort_field: str,
    order_field: str,
    states: list[str],
    expected: list[StatusCategory],
) -> None:
    project = unique_name(process)
    ado.add_project(project, process)
    # A decoy: another process's effort field must be ignored once the process is known.
    decoy = "Microsoft.VSTS.Scheduling.Effort" if process != "Scrum" else "Microsoft.VSTS.Scheduling.Size"
    for n, state in enumerate(states):
        ado.add_item(
            project,
            f"{process} item {state}",
            state=state,
            fields={effort_field: n + 1, decoy: 99, order_field: 1000.0 - n},
        )
    connector = make_connector()

    result = connector.fetch(project, None, full=True)

    # The default query leaves out the Completed and Removed categories, whatever they are called.
    assert [i.status for i in result.issues] == [s for s in states if s not in ("Closed", "Done", "Removed")]
    assert [i.status_category for i in result.issues] == expected
    assert [i.story_points for i in result.issues] == [float(n + 1) for n in range(len(expected))]
    ranks = [i.rank or "" for i in result.issues]
    assert ranks == sorted(ranks, reverse=True)  # order field read: higher position numbers sort later
    assert all(i.type is IssueType.STORY for i in result.issues)


def test_configured_effort_field_overrides_the_process(
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
) -> None:
    project = unique_name("Override")
    ado.add_project(project, "Agile")
    ado.add_item(project, "custom", fields={"Custom.Points": 8, "Microsoft.VSTS.Scheduling.StoryPoints": 3})
    connector = make_connector(effort_field="Custom.Points")

    (issue,) = connector.fetch(project, None, full=True).issues

    assert issue.story_points == 8.0


def test_configured_fields_are_not_cached_as_the_process(
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    project = unique_name("Cache")
    ado.add_project(project, "Agile")
    ado.add_item(project, "pts", fields={"Custom.Points": 8, "Microsoft.VSTS.Scheduling.StoryPoints": 3})
    overridden = make_connector(
        state=JsonDirSyncStateStore(tmp_path / "refinebot"), effort_field="Custom.Points"
    )
    assert [i.story_points for i in overridden.fetch(project, None, full=True).issues] == [8.0]

    plain = make_connector(state=JsonDirSyncStateStore(tmp_path / "refinebot"))
    mark = len(ado.requests)

    assert [i.story_points for i in plain.fetch(project, None, full=True).issues] == [3.0]
    assert of_kind(ado.requests_since(mark), "GET", "processconfiguration") == []  # came from the cache


def test_the_process_is_kept_in_the_store_for_12_hours(
    make_connector: ConnectorFactory, ado: FakeAzureDevOps, pat_env: str, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Aged")
    ado.add_project(project, "Scrum")
    ado.add_item(project, "pbi", fields={"Microsoft.VSTS.Scheduling.Effort": 5})
    store = MemorySyncStateStore()
    make_connector(state=store).fetch(project, None, full=True)
    (key,) = [k for k in store.keys() if k.endswith(f":process:{project}")]  # noqa: SIM118

    mark = len(ado.requests)
    fresh = make_connector(state=store).fetch(project, None, full=True)
    assert fresh.counters.discovery_requests == 0
    assert of_kind(ado.requests_since(mark), "GET", "processconfiguration") == []

    value = store.load(key)
    value["saved_at"] = (datetime.now(UTC) - timedelta(hours=13)).isoformat()
    store.save(key, value)
    mark = len(ado.requests)
    aged = make_connector(state=store).fetch(project, None, full=True)

    assert [i.story_points for i in aged.issues] == [5.0]
    assert len(of_kind(ado.requests_since(mark), "GET", "processconfiguration")) == 1
    assert aged.counters.discovery_requests == 3  # process + PBI + Bug states
    assert datetime.fromisoformat(store.load(key)["saved_at"]) > datetime.now(UTC) - timedelta(minutes=1)
