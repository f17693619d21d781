"""The raw JSON paths (``connectors/azure_devops/wire.py``: ``workitemsbatch``, WIQL) against the SDK's methods.

Both run through the real ``azure-devops`` SDK over HTTP to the session's fake organisation: the same
request on the wire, every value the SDK's ``WorkItem`` model carried still in the raw JSON and mapped
to the same ``Issue``, and every failure of either endpoint (401, 403, 404, 400, 429, 503, 500 and a delayed 200,
with their retries) ending in the same ``ConnectorError`` message, sleeps and requests as the SDK method's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest

from connectors.ado_json import AdoProcess, map_work_item
from connectors.azure_devops.client import AdoClient
from connectors.azure_devops.wire import (
    get_work_items_batch_json,
    query_ids_json,
    work_item_ids_of,
    work_items_of,
)
from connectors.base import ConnectorError, MemorySyncStateStore
from refinebot.config import AzureDevOpsSourceConfig
from refinebot.models import LinkKind
from tests.connectors.azure_devops.conftest import ConnectorFactory, Sleeps
from tests.fakes.ado_server import FakeAzureDevOps, Fault

DEP_REVERSE = "System.LinkTypes.Dependency-Reverse"
HIER_REVERSE = "System.LinkTypes.Hierarchy-Reverse"
DUPLICATE_FORWARD = "System.LinkTypes.Duplicate-Forward"
RELATED = "System.LinkTypes.Related"


def sdk_shape(item: Any) -> dict[str, Any]:
    """What the connector made of the SDK's ``WorkItem`` model before wire.py (the reference path)."""
    return {
        "id": item.id,
        "rev": item.rev,
        "fields": dict(item.fields or {}),
        "relations": [
            {"rel": r.rel, "url": r.url, "attributes": dict(r.attributes or {})}
            for r in (item.relations or [])
        ],
        "url": item.url,
    }


def identity(name: str, email: str) -> dict[str, Any]:
    """An IdentityRef as the service puts it in System.AssignedTo / System.CreatedBy."""
    return {
        "displayName": name,
        "url": f"https://spsprodweu5.vssps.visualstudio.com/_apis/Identities/{email}",
        "_links": {"avatar": {"href": f"https://dev.azure.com/fabrikam/_apis/GraphProfile/{email}"}},
        "id": f"id-{email}",
        "uniqueName": email,
        "imageUrl": f"https://dev.azure.com/fabrikam/_api/_common/identityImage?id={email}",
        "descriptor": f"aad.{email}",
    }


@dataclass(frozen=True)
class Rich:
    """A project of work items using every part of the JSON the mapper reads."""

    project: str
    rich: int
    parent: int
    blocker: int
    ids: list[int]


@pytest.fixture
def rich(ado: FakeAzureDevOps, request: pytest.FixtureRequest) -> Rich:
    # unique_name() cuts at 64 characters, where the parameters are: a digest keeps cases apart.
    project = f"Raw-{hashlib.sha256(request.node.name.encode()).hexdigest()[:12]}"
    ado.add_project(project)
    parent = ado.add_item(project, "Checkout epic", type="Feature")
    blocker = ado.add_item(project, "Payment provider contract", state="Active")
    duplicate = ado.add_item(project, "Checkout fails on Safari (copy)")
    rich = ado.add_item(
        project,
        "  Checkout fails on Safari  ",
        state="Active",
        fields={
            "System.Description": (
                "<div><p>Checkout <b>fails</b> when the cart holds &gt; 10 items &amp; a coupon.</p>"
                "<ul><li>Safari 17</li><li>iOS only</li></ul></div>"
            ),
            "Microsoft.VSTS.Common.AcceptanceCriteria": "<ul><li>Given a coupon, checkout succeeds</li></ul>",
            "System.AssignedTo": identity("Ana Lima", "ana@fabrikam.com"),
            "System.CreatedBy": identity("Bo Chen", "bo@fabrikam.com"),
            "System.IterationPath": f"{project}\\Sprint 7",
            "System.AreaPath": f"{project}\\Web",
            "System.Tags": "refine; Blocked; web",
            "Microsoft.VSTS.Scheduling.StoryPoints": 5.0,
            "Microsoft.VSTS.Common.StackRank": 1999.5,
            "Microsoft.VSTS.Common.Priority": 2,
            "System.Parent": parent,
        },
        relations=[
            (HIER_REVERSE, parent),
            (DEP_REVERSE, blocker),
            (DUPLICATE_FORWARD, duplicate),
            (RELATED, blocker),
            ("AttachedFile", blocker),  # not an issue link: ignored by both paths
        ],
    )
    return Rich(project, rich, parent, blocker, [parent, blocker, duplicate, rich])


@pytest.fixture
def client(ado: FakeAzureDevOps, pat_env: str, sleeps: Sleeps) -> AdoClient:
    """The connector's client (SDK connection and call guard) for the session's fake."""
    source = AzureDevOpsSourceConfig(
        kind="azure_devops",
        url=ado.url,
        token_env=pat_env,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.05,
    )
    return AdoClient(source, "ado-test", sleep=sleeps, jitter=lambda: 0.5)


def batch_request(ids: list[int], **kw: Any) -> Any:
    from azure.devops.v7_1.work_item_tracking.models import WorkItemBatchGetRequest

    kw.setdefault("error_policy", "Omit")
    return WorkItemBatchGetRequest(ids=ids, **kw)


def test_the_raw_json_keeps_every_value_the_sdk_model_carried_and_maps_the_same(
    client: AdoClient, rich: Rich
) -> None:
    wit = client.clients().wit
    request = batch_request([*rich.ids, 999_999], expand="Relations")  # 999999: an omitted slot

    models = wit.get_work_items_batch(request, project=rich.project)
    raws = get_work_items_batch_json(wit, request, project=rich.project)

    reference = [sdk_shape(model) for model in models if model is not None]
    assert [raw["id"] for raw in raws] == [item["id"] for item in reference] == rich.ids
    for raw, old in zip(raws, reference, strict=True):
        for key, value in old.items():
            if key == "relations" and not value:
                assert not raw.get("relations")  # the service leaves an empty list out
            else:
                assert raw[key] == value, key
        mapped = map_work_item(raw, AdoProcess())
        assert mapped == map_work_item(old, AdoProcess())

    issue = map_work_item(raws[-1], AdoProcess())
    # Not vacuous: the values the SDK path mapped are really there.
    assert issue.title == "Checkout fails on Safari"
    assert issue.assignee == "Ana Lima"
    assert issue.reporter == "Bo Chen"
    assert issue.sprint == f"{rich.project}\\Sprint 7"
    assert "fails when the cart holds > 10 items & a coupon" in issue.description
    assert "Safari 17" in issue.description
    assert issue.acceptance_criteria is not None and "checkout succeeds" in issue.acceptance_criteria
    assert issue.story_points == 5.0
    assert issue.rank is not None
    assert issue.priority == "2"
    assert issue.labels == ("refine", "Blocked", "web")
    assert issue.flagged_blocked
    assert issue.parent == str(rich.parent)
    assert issue.url is not None and issue.url.endswith(f"/_workitems/edit/{rich.rich}")
    assert issue.created is not None and issue.updated is not None
    assert {(link.kind, link.target) for link in issue.links} == {
        (LinkKind.PARENT, str(rich.parent)),
        (LinkKind.BLOCKED_BY, str(rich.blocker)),
        (LinkKind.DUPLICATED_BY, str(rich.ids[2])),
        (LinkKind.RELATES, str(rich.blocker)),
    }


def test_the_fields_only_batch_matches_the_sdk_too(client: AdoClient, rich: Rich) -> None:
    wit = client.clients().wit
    request = batch_request(rich.ids, fields=["System.Id", "System.WorkItemType", "System.State"])

    reference = [sdk_shape(model) for model in wit.get_work_items_batch(request)]
    raws = get_work_items_batch_json(wit, request)

    assert [raw["fields"] for raw in raws] == [item["fields"] for item in reference]
    assert raws[1]["fields"]["System.State"] == "Active"


def test_the_request_on_the_wire_is_the_sdk_methods(
    client: AdoClient, rich: Rich, ado: FakeAzureDevOps
) -> None:
    wit = client.clients().wit
    for project, request in [
        (rich.project, batch_request(rich.ids, expand="Relations")),
        (None, batch_request(rich.ids, fields=["System.Id", "System.State"])),
    ]:
        mark = len(ado.requests)
        wit.get_work_items_batch(request, project=project)
        get_work_items_batch_json(wit, request, project=project)
        sdk, raw = ado.requests_since(mark)
        assert (raw.method, raw.path, raw.query, raw.api_version, raw.body) == (
            sdk.method,
            sdk.path,
            sdk.query,
            sdk.api_version,
            sdk.body,
        )
        assert raw.path.endswith("/_apis/wit/workItemsBatch")
        assert raw.api_version == "7.1-preview.1"


def test_the_wiql_request_on_the_wire_is_the_sdk_methods_and_gives_the_same_ids(
    client: AdoClient, rich: Rich, ado: FakeAzureDevOps
) -> None:
    from azure.devops.v7_1.work_item_tracking.models import TeamContext, Wiql

    wit = client.clients().wit
    wiql = Wiql(query=f"SELECT [System.Id] FROM WorkItems WHERE [System.TeamProject] = '{rich.project}'")
    for time_precision, top in [(None, None), (True, 2)]:
        mark = len(ado.requests)
        result = wit.query_by_wiql(
            wiql, team_context=TeamContext(project=rich.project), time_precision=time_precision, top=top
        )
        ids = query_ids_json(wit, wiql, rich.project, time_precision=time_precision, top=top)
        sdk, raw = ado.requests_since(mark)
        assert (raw.method, raw.path, raw.query, raw.api_version, raw.body) == (
            sdk.method,
            sdk.path,
            sdk.query,
            sdk.api_version,
            sdk.body,
        )
        assert raw.api_version == "7.1-preview.2"
        assert ids == [int(ref.id) for ref in result.work_items]
        assert ids == rich.ids[: top or len(rich.ids)]


def _outcome(run: Callable[[], list[Any]]) -> str:
    try:
        return f"ok: {len(run())} items"
    except ConnectorError as exc:
        return f"error: {exc}"


@pytest.fixture
def no_faults_left(ado: FakeAzureDevOps) -> Iterator[None]:
    yield
    ado.faults.clear()


def _operations(
    endpoint: str, wit: Any, rich: Rich
) -> tuple[str, str, Callable[[], list[Any]], Callable[[], list[Any]]]:
    """(what, fault path, SDK method, raw path) for one endpoint; both return a list of items or ids."""
    from azure.devops.v7_1.work_item_tracking.models import TeamContext, Wiql

    if endpoint == "batch":
        request = batch_request(rich.ids, expand="Relations")
        return (
            f"work items batch of project {rich.project!r}",
            f"/{rich.project}/_apis/wit/workItemsBatch",
            lambda: [i for i in wit.get_work_items_batch(request, project=rich.project) or [] if i],
            partial(get_work_items_batch_json, wit, request, project=rich.project),
        )
    wiql = Wiql(query=f"SELECT [System.Id] FROM WorkItems WHERE [System.TeamProject] = '{rich.project}'")
    return (
        f"WIQL query of project {rich.project!r}",
        f"/{rich.project}/_apis/wit/wiql",
        lambda: list(
            wit.query_by_wiql(wiql, team_context=TeamContext(project=rich.project), top=50).work_items
        ),
        partial(query_ids_json, wit, wiql, rich.project, top=50),
    )


@pytest.mark.parametrize("endpoint", ["batch", "wiql"])
@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"status": 401}, r"authentication failed \(HTTP 401\) for (work items batch|WIQL query)"),
        (
            {"status": 404, "message": "TF200016: The following project does not exist: Gone."},
            r"project '[^']+' not found \(HTTP 404\): TF200016",
        ),
        ({"status": 404, "message": "VS800075: no such thing"}, r"failed \(HTTP 404\): VS800075"),
        (
            {
                "status": 400,
                "message": "VS403474: You requested 201 work items which exceeds the limit of 200",
            },
            r"failed \(HTTP 400\): VS403474",
        ),
        ({"status": 400, "message": "VS402337: more than 20000 results"}, r"^error: VS402337"),
        ({"status": 403, "message": "TF400813: not authorized"}, r"access denied \(HTTP 403\)"),
        ({"status": 429, "headers": {"Retry-After": "3"}}, r"^ok: 4 items$"),
        ({"status": 503, "times": 2}, r"^ok: 4 items$"),
        ({"status": 503, "times": 10}, r"failed after 5 attempts; last error: HTTP 503: TF400324"),
        ({"status": 500, "times": 10}, r"failed after 5 attempts; last error: HTTP 500: fault 500"),
        ({"status": None, "headers": {"Retry-After": "4"}}, r"^ok: 4 items$"),
    ],
    ids=[
        "401",
        "404-project",
        "404",
        "400-cap",
        "400-wiql-cap",
        "403",
        "429-retry-after",
        "503-retried",
        "503-gives-up",
        "500",
        "delayed-200",
    ],
)
def test_failures_map_to_the_same_errors_and_retries_as_the_sdk_path(
    client: AdoClient,
    rich: Rich,
    ado: FakeAzureDevOps,
    sleeps: Sleeps,
    no_faults_left: None,
    endpoint: str,
    fault: dict[str, Any],
    expected: str,
) -> None:
    what, path, *operations = _operations(endpoint, client.clients().wit, rich)
    seen: list[tuple[str, list[float], list[int]]] = []
    for operation in operations:
        ado.faults.clear()
        ado.faults.append(Fault(path, **fault))
        sleeps.calls.clear()
        mark = len(ado.requests)

        def run(operation: Callable[[], list[Any]] = operation) -> list[Any]:
            result = client.call(what, operation, project=rich.project, purpose="search")
            # A delayed 200's pause is taken before the next request: make one so it shows.
            client.call("probe", lambda: None, project=None)
            return result

        outcome = _outcome(run)
        seen.append((outcome, list(sleeps.calls), [r.status for r in ado.requests_since(mark)]))

    (sdk, raw) = seen
    assert raw == sdk
    assert re.search(expected, raw[0]), raw[0]
    if "Retry-After" in fault.get("headers", {}):
        assert raw[1] == [float(fault["headers"]["Retry-After"])]


@pytest.mark.parametrize(
    "body",
    [b"<html>Sign in</html>", b"{}", b'{"count": 1, "value": {"id": 1}}', b'{"value": [{"fields": {}}]}'],
    ids=["html", "no-value", "value-not-a-list", "item-without-id"],
)
def test_a_batch_answer_that_is_not_work_items_is_a_deserialisation_error(body: bytes) -> None:
    from azure.core.exceptions import DeserializationError

    with pytest.raises(DeserializationError):
        work_items_of(body)


@pytest.mark.parametrize(
    "body",
    [b"<html>Sign in</html>", b"{}", b'{"workItems": {"id": 1}}', b'{"workItems": [{"url": "x"}]}'],
    ids=["html", "no-work-items", "not-a-list", "reference-without-id"],
)
def test_a_wiql_answer_that_is_not_a_flat_result_is_a_deserialisation_error(body: bytes) -> None:
    from azure.core.exceptions import DeserializationError

    with pytest.raises(DeserializationError):
        work_item_ids_of(body)


def test_omitted_slots_are_dropped() -> None:
    assert work_items_of(b'{"count": 3, "value": [{"id": 1}, null, {"id": 3}]}') == [{"id": 1}, {"id": 3}]


def test_a_fetch_maps_the_raw_batch_and_keeps_it_whole_in_the_snapshot(
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    pat_env: str,
    rich: Rich,
) -> None:
    state = MemorySyncStateStore()
    result = make_connector(state=state).fetch(rich.project, None, full=True)

    issue = next(i for i in result.issues if i.key == str(rich.rich))
    assert issue.assignee == "Ana Lima"
    assert issue.sprint == f"{rich.project}\\Sprint 7"
    assert (LinkKind.BLOCKED_BY, str(rich.blocker)) in {(link.kind, link.target) for link in issue.links}
    # The snapshot holds the item as the service sent it, identity objects whole.
    saved_keys = state.keys()
    snapshot = state.load(next(k for k in saved_keys if ":sync:" in k))
    saved = snapshot["items"][str(rich.rich)]
    assert saved["fields"]["System.AssignedTo"]["uniqueName"] == "ana@fabrikam.com"
