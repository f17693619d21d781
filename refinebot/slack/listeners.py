"""What the Slack app does with a button press, a ``/refinebot`` command or an event: plain functions.

``build_app`` (``refinebot/slack/app.py``) registers them; each takes the ``SlackServices`` it needs
explicitly, so nothing here is global. Every listener acks first. After that it only reads and writes the
store and calls Slack: never Jira or Azure DevOps (Slack wants its answer within 3 s), so an agenda is
rebuilt from the store's last findings, the issues the last cycle saw, and the suppressions now in force.

Retries: Slack redelivers an event it thinks failed (``X-Slack-Retry-Num``) and a user's double click or a
proxy can replay an interaction; ``dedupe`` records each delivery's id in the store's ledger
(``seen_delivery``, one atomic insert) and acks a repeat without applying or answering it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slack_bolt import Ack, BoltResponse
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from refinebot.agenda import Agenda, AgendaSettings, build_agenda
from refinebot.config import LoadedConfig
from refinebot.cycle import cycle_ends, cycle_of, project_zone
from refinebot.slack.actions import ACTION_PREFIX, ActionError, Verb, decode, suppression_for, to_lift
from refinebot.slack.blocks import digest_payload, escape
from refinebot.slack.digest import EVENT_TYPE, content_hash
from refinebot.store import Store

logger = logging.getLogger(__name__)

COMMAND = "/refinebot"
POSTING_KEY = "refinebot:slack:posting"  # sync_state row: workspaces whose tokens were revoked
USAGE = (
    "*refinebot* keeps the backlog ready for refinement.\n"
    "• `/refinebot agenda [PROJECT]`: the current agenda (only you see it)\n"
    "• `/refinebot check KEY`: what refinebot found on one ticket\n"
    "• `/refinebot help`: this message"
)


@dataclass
class SlackServices:
    """What the listeners work with: the config, the store, a clock and the posting switch."""

    loaded: LoadedConfig
    store: Store
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def posting_disabled(self, team: str | None) -> str | None:
        """Why posting to ``team`` (or any workspace, for None) is off, or None while it is on."""
        disabled = (self.store.sync_state.load(POSTING_KEY) or {}).get("disabled") or {}
        if team is None:
            return next(iter(disabled.values()), None)
        reason = disabled.get(team)
        return str(reason) if reason else None

    def disable_posting(self, team: str, reason: str) -> None:
        """Stop posting to ``team`` (persisted, so a restart and the digest cycle see it too)."""
        state = self.store.sync_state.load(POSTING_KEY) or {}
        disabled = dict(state.get("disabled") or {})
        disabled[team] = f"{reason} at {self.now().isoformat(timespec='seconds')}"
        self.store.sync_state.save(POSTING_KEY, {"disabled": disabled})


# --- retries ---------------------------------------------------------------------------------------


def delivery_id(body: Mapping[str, Any]) -> str | None:
    """The id Slack keeps across redeliveries: an event's ``event_id``, an interaction's ``trigger_id``."""
    if body.get("event_id"):
        return f"event:{body['event_id']}"
    if body.get("trigger_id"):
        return f"trigger:{body['trigger_id']}"
    return None


def dedupe(
    services: SlackServices, req: BoltRequest, resp: BoltResponse, next: Callable[[], None]
) -> BoltResponse | None:
    """Global middleware: pass a delivery on the first time only; a repeat gets an empty 200."""
    ident = delivery_id(req.body)
    retries = req.headers.get("x-slack-retry-num") or []
    retry = retries[0] if retries else None
    if ident is None:
        if retry is not None:
            logger.info("Slack retry %s of a delivery without an id: acknowledged, not applied", retry)
            return BoltResponse(status=200, body="")
        next()
        return None
    if services.store.ledger.seen_delivery(ident, services.now()):
        logger.info("Slack delivery %s seen before (retry %s): acknowledged, not applied", ident, retry)
        return BoltResponse(status=200, body="")
    next()
    return None


# --- the agenda from the store ---------------------------------------------------------------------


def current_agenda(services: SlackServices, project: str, cycle: str | None = None) -> Agenda | None:
    """``project``'s agenda now, from the store alone; None before its first cycle ran."""
    store = services.store
    issues = store.issues.load(project)
    if issues is None:
        return None
    now = services.now()
    config = services.loaded.config
    cycle = cycle or cycle_of(now, project_zone(config, project))
    previous = store.readiness.previous(project, cycle)
    return build_agenda(
        project,
        cycle,
        issues,
        [stored.finding for stored in store.findings.open(project)],
        store.suppressions.list_suppressions(project),
        now,
        AgendaSettings.from_project(config.projects[project]),
        previous_share=previous.share if previous is not None else None,
    )


def _backlog_url(loaded: LoadedConfig, project: str) -> str | None:
    url = getattr(loaded.source_for(project), "url", None)
    return url if isinstance(url, str) else None


def agenda_payload(services: SlackServices, agenda: Agenda) -> dict[str, Any]:
    """The digest message of ``agenda`` with its metadata tag (as ``post_digest`` sends it)."""
    payload = digest_payload(agenda, backlog_url=_backlog_url(services.loaded, agenda.project))
    metadata = {"event_type": EVENT_TYPE, "event_payload": {"project": agenda.project, "cycle": agenda.cycle}}
    return {**payload, "metadata": metadata}


# --- buttons ---------------------------------------------------------------------------------------


def on_button(services: SlackServices, ack: Ack, body: Mapping[str, Any], client: WebClient) -> None:
    """A digest button: ack, apply through the suppression API, rebuild the agenda, edit the message."""
    ack()
    actions = body.get("actions") or []
    if not actions or actions[0].get("action_id") == ACTION_PREFIX + Verb.OPEN.value:
        return  # "Open ticket" is a link: Slack opened the URL already, the ack is all it needs
    try:
        action = decode(str(actions[0].get("value") or ""))
    except ActionError as exc:
        logger.warning("ignoring a button refinebot did not make: %s", exc)
        return
    if action.verb is Verb.OPEN:
        return
    container = body.get("container") or {}
    channel = str(container.get("channel_id") or (body.get("channel") or {}).get("id") or "")
    message_ts = str(container.get("message_ts") or (body.get("message") or {}).get("ts") or "")
    store = services.store
    digest = store.ledger.digest_by_message(channel, message_ts)
    if digest is None or digest.project not in services.loaded.config.projects:
        logger.warning(
            "button on message %s in %s: no digest of a configured project there", message_ts, channel
        )
        return
    user = str((body.get("user") or {}).get("id") or "unknown")
    project, now = digest.project, services.now()
    zone = project_zone(services.loaded.config, project)
    made = suppression_for(action, project, user, now, cycle_ends(digest.cycle, zone))
    with store.transaction():
        if made is not None:
            store.suppressions.add(made)
        for lifted in to_lift(action, store.suppressions.list_suppressions(project, active_at=now), now):
            assert lifted.id is not None
            store.suppressions.lift(lifted.id, now)
    logger.info("%s %s on %s by %s from Slack", project, action.verb.value, action.issue, user)
    agenda = current_agenda(services, project, digest.cycle)
    if agenda is None:
        return
    team = str((body.get("team") or {}).get("id") or "") or None
    reason = services.posting_disabled(team)
    if reason is not None:
        logger.warning("not editing the digest in %s: Slack posting is disabled (%s)", channel, reason)
        return
    payload = agenda_payload(services, agenda)
    try:
        client.chat_update(channel=channel, ts=message_ts, **payload)
    except SlackApiError as exc:
        logger.warning("Slack chat.update of the %s digest failed: %s", project, exc.response.get("error"))
        return
    store.ledger.save_digest(project, digest.cycle, channel, message_ts, content_hash(payload), now)


# --- /refinebot ------------------------------------------------------------------------------------


def _project_for_channel(services: SlackServices, channel_id: str, channel_name: str) -> str | None:
    projects = services.loaded.config.projects
    for key, settings in projects.items():
        if settings.slack_channel in (channel_id, f"#{channel_name}"):
            return key
    return next(iter(projects)) if len(projects) == 1 else None


def agenda_answer(services: SlackServices, project: str | None) -> dict[str, Any]:
    """The ephemeral answer to ``/refinebot agenda [PROJECT]`` (the digest without its buttons)."""
    projects = services.loaded.config.projects
    names = ", ".join(sorted(projects))
    if project is None:
        return {
            "response_type": "ephemeral",
            "text": f"Which project? `/refinebot agenda PROJECT`, one of: {names}",
        }
    if project not in projects:
        return {"response_type": "ephemeral", "text": f"No project {escape(project)} here; one of: {names}"}
    agenda = current_agenda(services, project)
    if agenda is None:
        return {
            "response_type": "ephemeral",
            "text": f"No agenda for {project} yet: its first cycle has not run (`refinebot digest`).",
        }
    payload = digest_payload(agenda, backlog_url=_backlog_url(services.loaded, project))
    blocks = [block for block in payload["blocks"] if block.get("type") != "actions"]
    return {"response_type": "ephemeral", "text": payload["text"], "blocks": blocks}


def check_answer(services: SlackServices, key: str) -> dict[str, Any]:
    """The answer to ``/refinebot check KEY``: the ticket's open findings, hidden ones said so."""
    lines = []
    for project in sorted(services.loaded.config.projects):
        for stored in services.store.findings.of_issue(project, key):
            finding = stored.finding
            hidden = f" _(hidden: {stored.verdict.replace('_', ' ')})_" if stored.suppressed else ""
            lines.append(f"• `{finding.rule}` {finding.severity.value}: {escape(finding.message)}{hidden}")
    if not lines:
        return {
            "response_type": "ephemeral",
            "text": f"*{escape(key)}*: no open findings (ready, or not seen by the last cycle).",
        }
    return {"response_type": "ephemeral", "text": f"*{escape(key)}*\n" + "\n".join(lines[:40])}


def on_command(services: SlackServices, ack: Ack, command: Mapping[str, Any]) -> None:
    """``/refinebot agenda [PROJECT] | check KEY | help``: answered in the ack (store reads only)."""
    words = str(command.get("text") or "").split()
    verb = words[0].lower() if words else "help"
    if verb == "agenda" and len(words) <= 2:
        project = words[1] if len(words) == 2 else None
        if project is None:
            project = _project_for_channel(
                services, str(command.get("channel_id") or ""), str(command.get("channel_name") or "")
            )
        ack(**agenda_answer(services, project))
    elif verb == "check" and len(words) == 2:
        ack(**check_answer(services, words[1].upper()))
    elif verb == "help" and len(words) == 1:
        ack(response_type="ephemeral", text=USAGE)
    else:
        ack(response_type="ephemeral", text=f"Unknown `{escape(' '.join(words)[:60])}`.\n{USAGE}")


# --- events ----------------------------------------------------------------------------------------


def on_revoked(services: SlackServices, body: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    """``tokens_revoked`` / ``app_uninstalled``: stop posting to that workspace, loudly."""
    team = str(body.get("team_id") or "unknown")
    kind = str(event.get("type") or "tokens_revoked")
    if kind == "tokens_revoked" and not (event.get("tokens") or {}).get("bot"):
        logger.info("Slack revoked user tokens only for workspace %s: posting goes on", team)
        return
    services.disable_posting(team, kind)
    logger.error(
        "Slack %s for workspace %s: posting to Slack is disabled; reinstall the app, set a new bot token "
        "and restart refinebot serve",
        kind,
        team,
    )
