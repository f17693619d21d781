"""The Azure DevOps side of the commenting contract: ``ado_harness()`` yields a ``CommentingHarness``.

It starts its own fake organisation (spec-validated when ../shared is present) holding one work item,
and a connector whose PAT is set in the environment only while the harness is open.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from connectors.azure_devops import AzureDevOpsConnector
from refinebot.config import AzureDevOpsSourceConfig
from tests.connectors.azure_devops.fake_org import PAT
from tests.connectors.azure_devops.spec_check import SPEC, SpecValidator, load_spec_definitions
from tests.fakes.ado_server import FakeAzureDevOps, Fault

HARNESS_TOKEN_ENV = "ADO_HARNESS_PAT"

_CODE_SPAN = re.compile(r"(?<!\\)(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
_MD_LINK = re.compile(r"(?<!\\)\[(?:\\.|[^\]\\])*\]\(\s*<?([^\s)>]+)")
_AUTOLINK = re.compile(r"(?<!\\)<((?:https?|ftp)://[^\s<>]+)>")
_HTML_HREF = re.compile(r"(?<!\\)<a\s[^>]*?href\s*=\s*[\"']?([^\"'\s>]+)", re.I)
# GFM's extended autolinks: a literal scheme and "://" (an escape anywhere inside breaks them), or www.
_BARE_URL = re.compile(r"(?<![\\\w/])(?:https?://|www\.)[^\s<>\\]+")


@dataclass
class AdoHarness:
    """A connector wired to a fake organisation holding one work item."""

    connector: AzureDevOpsConnector
    fake: FakeAzureDevOps
    project: str
    item_id: int

    @property
    def issue_key(self) -> str:
        return str(self.item_id)

    def comment_bodies(self) -> list[str]:
        """The stored text (Markdown or HTML) of every comment on the work item."""
        return [str(c["text"]) for c in self.fake.comments.get(self.item_id, []) if not c["isDeleted"]]

    def delete_comment(self, comment_id: str) -> None:
        """Azure DevOps keeps a deleted comment, flagged ``isDeleted`` (reads and edits answer 404)."""
        for comment in self.fake.comments.get(self.item_id, []):
            if str(comment["id"]) == comment_id:
                comment["isDeleted"] = True

    def add_person_comment(self, body: str) -> str:
        """``body`` as a comment by another person, written straight into the fake."""
        return str(self.fake.add_comment(self.item_id, body))

    def link_targets(self, body: str) -> list[str]:
        """The URLs ``body`` shows as links: Markdown as GFM renders it (links, autolinks, bare URLs,
        raw ``<a href>``), HTML through its ``href``s."""
        formats = {str(c["text"]): str(c["format"]) for c in self.fake.comments.get(self.item_id, [])}
        if formats.get(body, "markdown") == "html":
            return _HTML_HREF.findall(body)
        text = _CODE_SPAN.sub(" ", body)  # a code span's content is literal
        found = [*_MD_LINK.findall(text), *_AUTOLINK.findall(text), *_HTML_HREF.findall(text)]
        without_links = _MD_LINK.sub(" ", _AUTOLINK.sub(" ", text))
        found.extend(_BARE_URL.findall(without_links))
        return found

    def drop_next_comment_response(self) -> None:
        """The next comment POST is stored by the fake, but its answer never arrives."""
        path = f"/{self.project}/_apis/wit/workItems/{self.item_id}/comments"
        self.fake.faults.append(Fault(path, method="POST", drop_after=True))


@contextmanager
def ado_harness() -> Iterator[AdoHarness]:
    """A fresh fake organisation, one Agile project with one user story, and a connector for it."""
    validator = SpecValidator(load_spec_definitions(SPEC)) if SPEC.is_file() else None
    fake = FakeAzureDevOps(org="contract", pat=PAT, validator=validator.check if validator else None).start()
    previous = os.environ.get(HARNESS_TOKEN_ENV)
    os.environ[HARNESS_TOKEN_ENV] = PAT
    try:
        fake.add_project("Contract")
        item_id = fake.add_item("Contract", "Checkout with PayPal")
        source = AzureDevOpsSourceConfig(
            kind="azure_devops", url=fake.url, token_env=HARNESS_TOKEN_ENV, backoff_base_seconds=0.01
        )
        connector = AzureDevOpsConnector(source, name="contract", sleep=lambda _: None)
        yield AdoHarness(connector, fake, "Contract", item_id)
        if validator is not None:
            assert not validator.violations, validator.violations
    finally:
        if previous is None:
            os.environ.pop(HARNESS_TOKEN_ENV, None)
        else:
            os.environ[HARNESS_TOKEN_ENV] = previous
        fake.stop()
