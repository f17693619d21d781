"""What the commenting contract suite needs from each vendor's fake: one ``CommentingHarness`` per fake.

Each vendor's test package provides context managers yielding a harness (``tests.connectors.jira.harness``,
``tests.connectors.azure_devops.harness``); ``test_commenting_contract.py`` runs the same cases on all of
them, so both connectors keep the same promises about the bot's own comments.
"""

from __future__ import annotations

from typing import Protocol

from connectors.base import CommentingConnector


class CommentingHarness(Protocol):
    """A connector wired to a fake vendor server holding one issue to comment on."""

    connector: CommentingConnector
    issue_key: str  # an existing issue (or work item) on the fake

    def comment_bodies(self) -> list[str]:
        """The raw stored bodies (ADF as JSON text, wiki, Markdown or HTML) of every comment on the issue."""
        ...

    def add_person_comment(self, body: str) -> str:
        """Post ``body`` as another user (not the bot's account), straight into the fake; returns its id."""
        ...

    def link_targets(self, body: str) -> list[str]:
        """The URLs a stored ``body`` would show as clickable links (ADF link marks, wiki ``[x|url]`` and
        bare URLs, Markdown links and autolinks, HTML ``href``), as the vendor would render it."""
        ...

    def drop_next_comment_response(self) -> None:
        """The next comment POST is applied by the fake but its answer never reaches the client."""
        ...

    def delete_comment(self, comment_id: str) -> None:
        """A person deletes the comment in the web UI (straight into the fake)."""
        ...
