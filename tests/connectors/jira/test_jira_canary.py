"""Canary for the private parts of the ``jira`` package that ``connectors/jira/client.py`` uses.

An upgrade of ``jira`` may rename or reshape them without notice; these checks fail first, naming
what moved, instead of the connector failing at run time. They build a client without any request.
When they pass on a newer ``jira``, raise the upper bound of the pin in pyproject.toml.
"""

from __future__ import annotations

import inspect
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import requests
from jira import JIRA
from jira.exceptions import JIRAError

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def client() -> JIRA:
    # What JiraClient._build passes; get_server_info=False makes no request.
    return JIRA(
        server="http://127.0.0.1:9",
        options={"rest_api_version": "2"},
        token_auth="not-a-real-token",
        get_server_info=False,
        max_retries=0,
        timeout=1.0,
    )


def _parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_the_constructor_takes_the_arguments_the_client_passes() -> None:
    wanted = {"server", "options", "basic_auth", "token_auth", "get_server_info", "max_retries", "timeout"}
    assert wanted <= set(_parameters(JIRA.__init__))


def test_get_json_and_get_url_keep_their_signatures() -> None:
    assert _parameters(JIRA._get_json)[:4] == ["self", "path", "params", "base"]
    assert _parameters(JIRA._get_url)[:3] == ["self", "path", "base"]


def test_the_private_attributes_are_there_with_their_shapes(client: JIRA) -> None:
    assert isinstance(client._options, dict) and client._options["rest_api_version"] == "2"
    assert isinstance(client._session, requests.Session)
    assert isinstance(client._session.hooks["response"], list)
    assert _parameters(client._session.request)[:2] == ["method", "url"]
    assert isinstance(client._version, tuple)
    assert "{rest_api_version}" in client.JIRA_BASE_URL and "{path}" in client.AGILE_BASE_URL


def test_switching_the_api_version_option_switches_every_url(client: JIRA) -> None:
    assert client._get_url("serverInfo") == "http://127.0.0.1:9/rest/api/2/serverInfo"
    client._options["rest_api_version"] = "3"
    assert client._get_url("search/jql") == "http://127.0.0.1:9/rest/api/3/search/jql"


def test_jira_errors_carry_status_and_response() -> None:
    response = requests.Response()
    response.status_code = 429
    error = JIRAError(status_code=429, text="slow down", response=response)
    assert (error.status_code, error.text, error.response) == (429, "slow down", response)


def test_the_installed_jira_is_within_the_pinned_range() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    [pin] = [d for d in pyproject["project"]["dependencies"] if d.startswith("jira")]
    assert pin.replace(" ", "") == "jira>=3.8,<3.11"  # the range these checks were last run on
    major, minor = (int(part) for part in version("jira").split(".")[:2])
    assert (3, 8) <= (major, minor) < (3, 11)
