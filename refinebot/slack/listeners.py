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
from refinebot.cycle import current_cycle, project_cycle_ends
from refinebot.slack import posting
from refinebot.slack.actions import (
    ACTION_PREFIX,
    ActionError,
    ButtonAction,
    Verb,
    decode,
    suppression_for,
    to_lift,
)
from refinebot.slack.blocks import backlog_url, digest_payload, escape
from refinebot.slack.digest import EVENT_TYPE, DigestError, content_hash, resolve_channel
from refinebot.store import Store

logger = logging.getLogger(__name__)

COMMAND = "/refinebot"
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
        disabled = posting.disabled_workspaces(self.store.sync_state)
        if team is None:
            return next(iter(disabled.values()), None)
        return disabled.get(team)

    def disable_posting(self, team: str, reason: str) -> None:
        """Stop posting to ``team`` (persisted, so a restart and the digest cycle see it too)."""
        posting.disable(self.store.sync_state, team, reason, self.now())


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
    cycle = cycle or current_cycle(config, project, now, store.cycle_last_run)
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


def agenda_payload(services: SlackServices, agenda: Agenda) -> dict[str, Any]:
    """The digest message of ``agenda`` with its metadata tag (as ``post_digest`` sends it)."""
    payload = digest_payload(agenda, backlog_url=backlog_url(services.loaded, agenda.project))
    metadata = {"event_type": EVENT_TYPE, "event_payload": {"project": agenda.project, "cycle": agenda.cycle}}
    return {**payload, "metadata": metadata}


# --- buttons ---------------------------------------------------------------------------------------


def _unrecorded_digest(
    services: SlackServices, body: Mapping[str, Any], channel: str, user: str
) -> tuple[str, str] | None:
    """(project, cycle) of a digest message the ledger does not know yet, or None.

    The race: ``refinebot digest`` posted the message and a PM pressed a button before the run committed
    the message's (channel, ts) (or the run died in between). The message's own metadata tag says which
    digest it is when Slack sends it along; else the project whose ``slack_channel`` this is (or, in a DM,
    whose ``pm_slack_user`` pressed), in the current cycle. Only configured projects are ever taken.
    """
    projects = services.loaded.config.projects
    metadata = (body.get("message") or {}).get("metadata") or {}
    tagged = metadata.get("event_payload") or {}
    if metadata.get("event_type") == EVENT_TYPE:  # its own tag says: trust it, configured or not
        if tagged.get("project") in projects and tagged.get("cycle"):
            return str(tagged["project"]), str(tagged["cycle"])
        return None
    if channel.startswith("D"):
        matches = [key for key, settings in projects.items() if settings.pm_slack_user == user]
    else:
        matches = [key for key, settings in projects.items() if settings.slack_channel == channel]
    if len(matches) != 1:
        return None
    project = matches[0]
    return project, current_cycle(
        services.loaded.config, project, services.now(), services.store.cycle_last_run
    )


def _saved_note(action: ButtonAction, project: str) -> str:
    """The ephemeral answer when the press is stored but the message cannot be rebuilt yet."""
    done = {
        Verb.SNOOZE_1W: f"{action.issue} is snoozed for 1 week",
        Verb.SNOOZE_2W: f"{action.issue} is snoozed for 2 weeks",
        Verb.NOT_DUPLICATE: f"{action.issue} is marked not a duplicate of {action.other}",
        Verb.REMOVE: f"{action.issue} is off this agenda",
        Verb.ADD_BACK: f"{action.issue} is back on the agenda",
    }.get(action.verb, f"{action.issue}: done")
    return (
        f":white_check_mark: Saved: {escape(done)}. The {escape(project)} digest shows it once the "
        "refinebot run now going (or the next one) has finished."
    )


def on_button(services: SlackServices, ack: Ack, body: Mapping[str, Any], client: WebClient) -> None:
    """A digest button: ack, apply through the suppression API, rebuild the agenda, edit the message.

    A press on a message the store cannot rebuild yet (the digest run is still going: no issue snapshot
    holds the ticket, or the message's (channel, ts) is not committed) is still stored; the message is
    then edited if the store can rebuild it, else the presser gets an ephemeral "saved, shows after the
    run" note, and the run itself posts with the suppressions in force when it posts.
    """
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
    user = str((body.get("user") or {}).get("id") or "unknown")
    store = services.store
    digest = store.ledger.digest_by_message(channel, message_ts)
    found = (
        (digest.project, digest.cycle)
        if digest is not None
        else _unrecorded_digest(services, body, channel, user)
    )
    if found is None or found[0] not in services.loaded.config.projects:
        logger.warning(
            "button on message %s in %s: no digest of a configured project there", message_ts, channel
        )
        return
    project, cycle = found
    if digest is None:
        logger.info("button on %s's digest %s in %s before the run recorded it", project, message_ts, channel)
    now = services.now()
    ends = project_cycle_ends(services.loaded.config, project, cycle)
    made = suppression_for(action, project, user, now, ends)
    with store.transaction():
        if made is not None:
            store.suppressions.add(made)
        for lifted in to_lift(action, store.suppressions.list_suppressions(project, active_at=now), now):
            assert lifted.id is not None
            store.suppressions.lift(lifted.id, now)
    logger.info("%s %s on %s by %s from Slack", project, action.verb.value, action.issue, user)
    team = str((body.get("team") or {}).get("id") or "") or None
    reason = services.posting_disabled(team)
    if reason is not None:
        logger.warning("not editing the digest in %s: Slack posting is disabled (%s)", channel, reason)
        return
    issues = store.issues.load(project)
    if issues is None or not any(issue.key == action.issue for issue in issues):
        # The run that posted this message has not saved its issues yet: a rebuilt message would miss
        # the ticket. Say it was saved; the run's own post shows it (it re-reads the suppressions).
        try:
            client.chat_postEphemeral(channel=channel, user=user, text=_saved_note(action, project))
        except SlackApiError as exc:
            logger.warning("Slack chat.postEphemeral in %s failed: %s", channel, exc.response.get("error"))
        return
    agenda = current_agenda(services, project, cycle)
    if agenda is None:
        return
    payload = agenda_payload(services, agenda)
    digest_hash = content_hash(payload)
    try:
        client.chat_update(channel=channel, ts=message_ts, **payload)
    except SlackApiError as exc:
        logger.warning("Slack chat.update of the %s digest failed: %s", project, exc.response.get("error"))
        return
    store.ledger.save_digest(project, cycle, channel, message_ts, digest_hash, now)
    _update_copies(services, client, project, cycle, channel, payload, digest_hash)


def _update_copies(
    services: SlackServices,
    client: WebClient,
    project: str,
    cycle: str,
    pressed_in: str,
    payload: dict[str, Any],
    digest_hash: str,
) -> None:
    """Edit the cycle's other copy of the digest (the channel's after a press in the PM's DM, or the
    reverse), so both say the same."""
    settings = services.loaded.config.projects[project]
    targets = [t for t in (settings.slack_channel, settings.pm_slack_user) if t]
    if len(targets) < 2:
        return
    for target in targets:
        try:
            channel = resolve_channel(client, target)
        except (SlackApiError, DigestError, OSError) as exc:  # OSError: Slack unreachable after the retry
            logger.warning("cannot find the %s digest's copy in %s: %s", project, target, exc)
            continue
        record = services.store.ledger.digest(project, cycle, channel)
        if channel == pressed_in or record is None or record.content_hash == digest_hash:
            continue
        try:
            client.chat_update(channel=channel, ts=record.message_ts, **payload)
        except SlackApiError as exc:
            logger.warning("Slack chat.update of the %s digest copy in %s failed: %s", project, channel,
                           exc.response.get("error"))  # fmt: skip
            continue
        services.store.ledger.save_digest(
            project, cycle, channel, record.message_ts, digest_hash, services.now()
        )


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
    payload = digest_payload(agenda, backlog_url=backlog_url(services.loaded, project))
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
        "Slack %s for workspace %s: posting to Slack is disabled; reinstall the app, set its new bot token, "
        "restart refinebot serve and run `refinebot digest --enable-slack`",
        kind,
        team,
    )
