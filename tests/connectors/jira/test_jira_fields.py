"""Field discovery per site; mapping of sprints, ranks, links and bodies, through the fake Jira."""

from __future__ import annotations

import pytest

from connectors.base import MemorySyncStateStore
from refinebot.models import LinkKind, StatusCategory
from tests.fakes.jira_data import (
    adf,
    board_configuration,
    bullets,
    cloud_sprint,
    heading,
    legacy_sprint,
    link,
    make_issue,
    para,
)
from tests.fakes.jira_server import FieldIds, Site


@pytest.mark.parametrize(
    ("ids", "cloud"),
    [
        # Cloud team-managed: "Story point estimate" (jsw-story-points), sprint 10020, rank 10019
        (FieldIds(), True),
        # Cloud company-managed style: a float field named "Story Points"
        (
            FieldIds(
                story_points="customfield_10026",
                story_points_type="com.atlassian.jira.plugin.system.customfieldtypes:float",
                story_points_name="Story Points",
                sprint="customfield_10007",
                rank="customfield_10005",
            ),
            True,
        ),
        # Apache's Data Center ids
        (
            FieldIds(
                story_points="customfield_12310293",
                story_points_type="com.atlassian.jira.plugin.system.customfieldtypes:float",
                story_points_name="Story Points",
                sprint="customfield_12310921",
                rank="customfield_12311820",
                original_points=None,
            ),
            False,
        ),
    ],
)
def test_discovers_site_specific_field_ids(fake_jira, connect, ids: FieldIds, cloud: bool) -> None:
    site = fake_jira.new_site(cloud=cloud, fields=ids)
    make_issue(
        site,
        1,
        points=8.0,
        sprint=[cloud_sprint("Sprint 12", "active")] if cloud else None,
        rank="0|hzzzzz:",
    )

    [issue] = connect(site).fetch("SHOP", None).issues

    assert issue.story_points == 8.0  # never the 40-point "Original story points" decoy
    assert issue.rank == "0|hzzzzz:"
    if cloud:
        assert issue.sprint == "Sprint 12"
        assert issue.in_active_sprint
    requested = site.requests("GET", r"/rest/api/\d/search(/jql)?")[0].query["fields"][0].split(",")
    assert ids.story_points in requested
    assert ids.sprint in requested
    assert "customfield_10500" not in requested


def test_board_estimation_field_wins_over_the_field_list(cloud_site: Site, connect) -> None:
    # The board estimates with a field whose name matches nothing (Spring-style ids).
    cloud_site.field_ids.story_points = "customfield_10142"
    cloud_site.field_ids.story_points_name = "Estimate"
    cloud_site.field_ids.story_points_type = "com.atlassian.jira.plugin.system.customfieldtypes:float"
    cloud_site.boards[7] = board_configuration(cloud_site, 7, "customfield_10142", 10019)
    make_issue(cloud_site, 1, points=5.0)

    [issue] = connect(cloud_site, board_id=7).fetch("SHOP", None).issues

    assert issue.story_points == 5.0
    assert len(cloud_site.requests("GET", "/rest/agile/1.0/board/7/configuration")) == 1


def test_a_board_estimating_by_original_time_estimate_is_not_read_as_story_points(
    cloud_site: Site, connect
) -> None:
    config = board_configuration(cloud_site, 8, "timeoriginalestimate", 10019)
    config["estimation"]["field"]["displayName"] = "Original Time Estimate"
    cloud_site.boards[8] = config
    make_issue(cloud_site, 1, points=3.0)["fields"]["timeoriginalestimate"] = 28800  # 8 h, in seconds
    make_issue(cloud_site, 2, points=None)["fields"]["timeoriginalestimate"] = 14400

    issues = connect(cloud_site, board_id=8).fetch("SHOP", None).issues

    assert {i.key: i.story_points for i in issues} == {"SHOP-1": 3.0, "SHOP-2": None}


def test_config_overrides_win_over_discovery(cloud_site: Site, connect) -> None:
    make_issue(cloud_site, 1, points=2.0)

    [issue] = connect(cloud_site, story_points_field="customfield_10500").fetch("SHOP", None).issues

    assert issue.story_points == 40.0  # the admin said so


def test_acceptance_criteria_field_is_discovered_and_read(cloud_site: Site, connect) -> None:
    cloud_site.field_ids.acceptance_criteria = "customfield_10782"
    make_issue(
        cloud_site,
        1,
        acceptance=adf(bullets("Totals include VAT", "Receipt shows the order number")),
    )

    [issue] = connect(cloud_site).fetch("SHOP", None).issues

    assert issue.acceptance_criteria == "- Totals include VAT\n- Receipt shows the order number"


def test_discovery_is_cached_per_source(cloud_site: Site, connect) -> None:
    make_issue(cloud_site, 1)
    state = MemorySyncStateStore()

    first = connect(cloud_site, state=state).fetch("SHOP", None, full=True)
    second = connect(cloud_site, state=state).fetch("SHOP", None, full=True)

    assert first.counters.discovery_requests == 2  # serverInfo, /field
    assert len(cloud_site.requests("GET", "/rest/api/3/field")) == 1
    assert second.counters.discovery_requests == 1  # only the new client's serverInfo
    assert state.load(f"jira:test:{cloud_site.url}:fields") is not None


def test_a_changed_field_override_discovers_again_and_reads_everything_again(
    cloud_site: Site, connect
) -> None:
    make_issue(cloud_site, 1)
    state = MemorySyncStateStore()
    connect(cloud_site, state=state).fetch("SHOP", None)

    again = connect(cloud_site, state=state, story_points_field="customfield_10500").fetch("SHOP", None)

    assert len(cloud_site.requests("GET", "/rest/api/3/field")) == 2
    assert not again.incremental  # the snapshot was read with another field map


def test_legacy_sprint_strings_from_data_center(dc_site: Site, connect) -> None:
    make_issue(
        dc_site,
        1,
        sprint=[legacy_sprint("Sprint 40", "closed"), legacy_sprint("Sprint 41", "active")],
    )
    make_issue(dc_site, 2, sprint=[legacy_sprint("Sprint 42", "future")])

    first, second = connect(dc_site).fetch("SHOP", None).issues

    assert (first.sprint, first.in_active_sprint) == ("Sprint 41", True)
    assert (second.sprint, second.in_active_sprint) == ("Sprint 42", False)


@pytest.mark.parametrize("type_name", ["Blocks", "Blocker", "Blockers"])
def test_blocked_by_is_read_from_link_text_whatever_the_type_is_called(
    cloud_site: Site, connect, type_name: str
) -> None:
    make_issue(
        cloud_site,
        1,
        links=[
            link(cloud_site, type_name, "inward", "API-9", "In Progress"),
            link(cloud_site, type_name, "outward", "SHOP-5", "To Do"),
            link(cloud_site, "Relates", "outward", "SHOP-6", "Done"),
        ],
    )

    [issue] = connect(cloud_site).fetch("SHOP", None).issues

    kinds = {(lk.kind, lk.target, lk.target_status_category) for lk in issue.links}
    assert (LinkKind.BLOCKED_BY, "API-9", StatusCategory.IN_PROGRESS) in kinds
    assert (LinkKind.BLOCKS, "SHOP-5", StatusCategory.TODO) in kinds
    assert (LinkKind.RELATES, "SHOP-6", StatusCategory.DONE) in kinds


def test_depends_on_link_counts_as_blocked_by(cloud_site: Site, connect) -> None:
    make_issue(cloud_site, 1, links=[link(cloud_site, "Depend", "outward", "API-3")])

    [issue] = connect(cloud_site).fetch("SHOP", None).issues

    assert [(lk.kind, lk.target) for lk in issue.links] == [(LinkKind.BLOCKED_BY, "API-3")]


def test_adf_description_keeps_headings_and_lists_for_the_ac_rule(cloud_site: Site, connect) -> None:
    make_issue(
        cloud_site,
        1,
        description=adf(
            para("Shoppers need a receipt."),
            heading("Acceptance Criteria", 2),
            bullets("Given an order, when paid, then a receipt is emailed"),
        ),
    )

    [issue] = connect(cloud_site).fetch("SHOP", None).issues

    lines = issue.description.splitlines()
    assert "Acceptance Criteria" in lines
    assert "- Given an order, when paid, then a receipt is emailed" in lines
    assert issue.status_category is StatusCategory.TODO
