"""The SHOP project the replica tests run: its backlog on the fake Jira, its digest in C0SHOP on the fake
Slack, and what the fakes saw (bot comments per ticket, chat.postMessage calls).

The backlog and config are the Slack digest suite's own (``tests/cycle/test_digest_slack.py``), with the
database URL of the engine under test put in front.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from refinebot.markup import adf_to_text
from refinebot.store import Store
from refinebot.suppressions import Suppression
from tests.cycle.test_digest_jira import _by_bot
from tests.cycle.test_digest_slack import SLACK_ENV, TOKEN_ENV, _backlog, _config
from tests.fakes.jira_data import adf, make_issue, para
from tests.fakes.jira_server import FakeJiraServer, Site
from tests.fakes.slack_server import TOKEN, FakeSlack

CHANNEL = "C0SHOP"
FLAGGED = ("SHOP-2", "SHOP-3")  # SHOP-1 is ready; SHOP-2 lacks acceptance criteria; SHOP-3 is 21 points


@dataclass(frozen=True)
class Shop:
    """One project wired to the fakes."""

    site: Site
    slack: FakeSlack
    config: Path
    database_url: str

    @classmethod
    def create(
        cls,
        jira: FakeJiraServer,
        slack: FakeSlack,
        base_url: str,
        folder: Path,
        url: str,
        *,
        light: bool = False,
    ) -> Shop:
        """The project on a new site; ``light``: without the duplicate rule (whose scikit-learn import is most
        of a fresh process's start), for tests that start many ``python -m refinebot`` processes."""
        site = jira.new_site(cloud=True)
        _backlog(site)
        config = _config(folder, site, base_url)
        text = f'database_url = "{url}"\n' + config.read_text(encoding="utf-8")
        if light:
            text += "\n[rules.duplicate-candidate]\nenabled = false\n"
        config.write_text(text, encoding="utf-8")
        return cls(site, slack, config, url)

    def digest_args(self, *args: str) -> list[str]:
        """``refinebot digest`` of this project."""
        return ["digest", "--config", str(self.config), *args]

    def env(self, **extra: str) -> dict[str, str]:
        """The tokens a run needs, plus ``extra``."""
        return {TOKEN_ENV: self.site.token, SLACK_ENV: TOKEN, **extra}

    def bot_comments(self, key: str) -> int:
        """How many comments the bot has on ``key``."""
        return sum(1 for comment in self.site.all_comments(key) if _by_bot(comment))

    def comment_counts(self, keys: int = 3) -> list[int]:
        """Bot comments on SHOP-1 .. SHOP-``keys``."""
        return [self.bot_comments(f"SHOP-{n}") for n in range(1, keys + 1)]

    def comment_text(self, key: str) -> str:
        """The bot's (only) comment on ``key``, as plain text."""
        (comment,) = [c for c in self.site.all_comments(key) if _by_bot(c)]
        return adf_to_text(comment["body"])

    def posts(self) -> int:
        """chat.postMessage calls the fake Slack accepted for the channel."""
        return sum(1 for method, params in self.slack.calls if method == "chat.postMessage" and _to(params))

    def messages(self) -> int:
        """Messages in the channel."""
        return len(self.slack.in_channel(CHANNEL))

    def change(self) -> None:
        """The team works on the backlog: SHOP-3 re-estimated (its comment is edited), SHOP-4 added (40 points)."""
        points = self.site.field_ids.story_points
        assert points is not None  # a Cloud site has the field
        self.site.touch("SHOP-3", datetime.now(UTC), **{points: 3.0})
        make_issue(self.site, 4, points=40.0)


def _to(params: dict[str, object]) -> bool:
    return params.get("channel") == CHANNEL


def answer(shop: Shop, key: str, line: str) -> None:
    """Dana answers on ``key`` with one command line, five minutes on (later than the bot's own write, as
    people are), 'updated' bumped as Jira does."""
    when = datetime.now(UTC) + timedelta(minutes=5)
    shop.site.add_person_comment(key, adf(para("Not now, next quarter."), para(line)), when=when)
    shop.site.touch(key, when)


def suppressions(shop: Shop) -> list[Suppression]:
    """Every suppression the store holds for SHOP (lifted ones included)."""
    with Store.open(shop.database_url, migrate=False) as store:
        return store.suppressions.list_suppressions("SHOP")
