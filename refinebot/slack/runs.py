"""The digest cycle as ``refinebot digest`` runs it, wired to Slack: one builder that the CLI and the
scheduler in ``refinebot serve`` both call, so a scheduled run is exactly a ``digest --project KEY``.

It sits in the Slack package because it needs the Slack poster and renderer, which ``refinebot.digest``
may not import; the cycle itself (sync, replies, rules, store, comments, agenda) stays in ``digest``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.base import ProgressCallback, no_progress
from refinebot.agenda import Agenda
from refinebot.config import LoadedConfig
from refinebot.cycle import DigestPoster, RecordingPoster
from refinebot.digest import DigestCycle, PosterFor, RecordingWriter
from refinebot.slack.blocks import backlog_url, digest_payload
from refinebot.slack.charts import ChartPoster, store_chart_source
from refinebot.slack.digest import SlackDigestPoster, build_client
from refinebot.store import Store
from rules.registry import RuleRegistry


def slack_poster_for(loaded: LoadedConfig, store: Store, *, dry_run: bool) -> PosterFor:
    """Each project's digest poster: Slack (``[slack]``'s client, the store's ledger) when the bot token
    is set, a recorder in a dry run, else none. One poster, and so one pacer, for the whole run."""
    if dry_run:
        recorder = RecordingPoster()
        return lambda _project: recorder
    token = loaded.config.slack.bot_token()
    poster: DigestPoster | None = None
    if token is not None:
        # The store's sync state holds the posting switch that app_uninstalled / tokens_revoked set.
        client = build_client(loaded.config.slack, token)
        charts = ChartPoster(client, store.chart_uploads, store_chart_source(store.readiness))
        poster = SlackDigestPoster(client, store.ledger, state=store.sync_state, charts=charts)
    return lambda _project: poster


def slack_renderer(loaded: LoadedConfig) -> Callable[[Agenda], dict[str, Any]]:
    """The agenda as the Slack payload (``refinebot agenda --format blocks`` shows the same)."""
    return lambda agenda: digest_payload(agenda, backlog_url=backlog_url(loaded, agenda.project))


def digest_cycle(
    loaded: LoadedConfig,
    store: Store,
    registry: RuleRegistry,
    *,
    dry_run: bool = False,
    progress: ProgressCallback = no_progress,
) -> DigestCycle:
    """The cycle ``refinebot digest`` runs: the connectors write (a recorder in a dry run), the agenda
    goes to Slack through the bot token (a recorder in a dry run)."""
    recorder = RecordingWriter()
    return DigestCycle(
        loaded,
        store,
        registry,
        # --dry-run swaps the writers: a recorder for the trackers, a rolled-back transaction for the store.
        writer_for=(lambda _connector: recorder) if dry_run else (lambda connector: connector),
        poster_for=slack_poster_for(loaded, store, dry_run=dry_run),
        render=slack_renderer(loaded),
        progress=progress,
        exclusive=not dry_run,  # a dry run writes nothing, so it claims nothing either
    )
