"""Jira Cloud and Data Center harnesses for the commenting contract suite, on the fake Jira.

``cloud_harness()`` and ``dc_harness()`` each start a fake Jira with one issue (``SHOP-1``) and yield
a ``CommentingHarness``. Every ADF body the bot posted is checked against the ADF schema whenever the
suite reads the stored bodies. ``link_targets`` reads a body as Jira would render it: ADF link marks
(and inline cards); in wiki markup ``[text|url]`` and ``[url]`` links and bare URLs, where a
backslash makes the next character plain text.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from connectors.jira import JiraConnector
from refinebot.config import JiraSourceConfig
from tests.fakes.jira_data import make_issue
from tests.fakes.jira_server import FakeJiraServer, Site
from tests.shared_data import SHARED

ADF_SCHEMA = SHARED / "specs" / "adf-schema-v1-full.json"


def source_for(site: Site, **overrides: Any) -> JiraSourceConfig:
    """A source config pointing at ``site`` with test-sized backoff (0.01 s base)."""
    values: dict[str, Any] = {
        "kind": "jira",
        "url": site.url,
        "token_env": f"FAKE_JIRA_TOKEN{site.prefix.replace('/', '_').upper()}",
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.05,
    }
    if site.cloud:
        values["email"] = site.email
    values.update(overrides)
    return JiraSourceConfig.model_validate(values)


def adf_validator_for(path: Path) -> jsonschema.protocols.Validator:
    """A validator for the ADF JSON schema at ``path``."""
    return jsonschema.Draft4Validator(json.loads(path.read_text(encoding="utf-8")))


def adf_links(node: Any) -> list[str]:
    """The URLs an ADF document shows as links: link marks and inline cards."""
    found: list[str] = []
    if isinstance(node, dict):
        for mark in node.get("marks") or []:
            if mark.get("type") == "link":
                found.append(str(mark["attrs"]["href"]))
        if node.get("type") in {"inlineCard", "blockCard", "embedCard"}:
            found.append(str(node.get("attrs", {}).get("url")))
        for child in node.get("content") or []:
            found += adf_links(child)
    return found


_ESCAPED = re.compile(r"\\[^A-Za-z0-9\s]")
_WIKI_LINK = re.compile(r"\[([^\[\]]*)\]")
_BARE_URL = re.compile(r"(?i)\b(?:https?|ftp|file|mailto|irc|news|nntp)://[^\s\[\]|]+")


def wiki_links(body: str) -> list[str]:
    """The URLs a wiki body shows as links: ``[text|url]``, ``[url]`` and bare URLs."""
    plain = _ESCAPED.sub("\x00", body)  # an escaped character is text and ends any URL
    found: list[str] = []
    for match in _WIKI_LINK.finditer(plain):
        target = match.group(1).rsplit("|", 1)[-1].strip()
        if _BARE_URL.fullmatch(target) or target.startswith(("http://", "https://")):
            found.append(target)
    outside = _WIKI_LINK.sub(" ", plain)
    found += [m.group(0) for m in _BARE_URL.finditer(outside)]
    return found


@dataclass
class JiraHarness:
    """A ``CommentingHarness`` over one fake Jira site."""

    connector: JiraConnector
    issue_key: str
    site: Site
    validator: jsonschema.protocols.Validator | None

    def comment_bodies(self) -> list[str]:
        bodies = [comment["body"] for comment in self.site.all_comments(self.issue_key)]
        if not self.site.cloud:
            return [str(body) for body in bodies]
        if self.validator is not None:
            for body in bodies:
                self.validator.validate(body)
        return [json.dumps(body) for body in bodies]

    def delete_comment(self, comment_id: str) -> None:
        self.site.delete_comment(self.issue_key, comment_id)

    def add_person_comment(self, body: str) -> str:
        stored: Any = body
        if self.site.cloud:
            try:
                stored = json.loads(body)
            except ValueError:
                stored = {
                    "type": "doc",
                    "version": 1,
                    "content": [{"type": "paragraph", "content": [{"type": "text", "text": body}]}],
                }
        return self.site.add_person_comment(self.issue_key, stored)

    def link_targets(self, body: str) -> list[str]:
        return adf_links(json.loads(body)) if self.site.cloud else wiki_links(body)

    def drop_next_comment_response(self) -> None:
        self.site.drop_after_commit("POST", f"/rest/api/{self.site.api}/issue/{self.issue_key}/comment")


@contextmanager
def _harness(cloud: bool) -> Iterator[JiraHarness]:
    server = FakeJiraServer().start()
    site = server.new_site(cloud=cloud)
    make_issue(site, 1)
    source = source_for(site)
    previous = os.environ.get(source.token_env)
    os.environ[source.token_env] = site.token if cloud else site.pat
    validator = adf_validator_for(ADF_SCHEMA) if ADF_SCHEMA.exists() else None
    try:
        yield JiraHarness(JiraConnector(source, name="contract"), "SHOP-1", site, validator)
    finally:
        if previous is None:
            os.environ.pop(source.token_env, None)
        else:
            os.environ[source.token_env] = previous
        server.stop()


@contextmanager
def cloud_harness() -> Iterator[JiraHarness]:
    """A connector on a fake Jira Cloud site (API v3, ADF bodies) with issue SHOP-1."""
    with _harness(cloud=True) as made:
        yield made


@contextmanager
def dc_harness() -> Iterator[JiraHarness]:
    """A connector on a fake Jira Data Center server (API v2, wiki bodies) with issue SHOP-1."""
    with _harness(cloud=False) as made:
        yield made
