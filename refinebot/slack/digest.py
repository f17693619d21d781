"""Post one project's digest to one Slack channel once per cycle, editing it in place on reruns.

Idempotent by three checks, in order: the ledger's (project, cycle, channel) record (same content hash:
no request; else ``chat.update``); then, when the ledger has none, a look through the channel's recent
history for a message tagged with our ``metadata`` *and* posted by our own bot (``auth.test``'s bot id
and bot user: another app's message with look-alike metadata is never taken for ours); a crash after
``chat.postMessage`` and before the ledger commit left such a message: edit it, do not post again. Only
then ``chat.postMessage``. The app therefore needs ``chat:write`` and ``channels:history`` /
``groups:history`` (``im:history`` for a ``pm_slack_user`` DM, opened with ``conversations.open``, scope
``im:write``; ``channels:read`` only for a ``#name`` channel, resolved to its ID once, as ``chat.update``
needs the ID).

Posting can be switched off per workspace (``refinebot.slack.posting``: ``app_uninstalled`` /
``tokens_revoked`` set it): the poster then skips, saying why, and the cycle goes on.

429s are retried after ``Retry-After`` by slack_sdk's ``RateLimitErrorRetryHandler`` (its sleep made
injectable), dropped connections by ``ConnectionErrorRetryHandler``; posts are paced to one per second per
channel, which is what Slack allows ``chat.postMessage``. The token is a ``SecretStr`` handed straight to
the client and never logged.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler, RetryState
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse

from refinebot.agenda import Agenda
from refinebot.config import SlackConfig
from refinebot.cycle import DigestAction, DigestLedger, DigestOutcome, DigestPostError
from refinebot.faults import fault_point
from refinebot.slack import posting
from refinebot.slack.blocks import payload_hash_input
from refinebot.slack.charts import ChartPoster

logger = logging.getLogger(__name__)

EVENT_TYPE = "refinebot_digest"
HISTORY_PAGES = 3  # 3 x 100 recent messages: a digest channel sees far fewer between a crash and a rerun
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")  # pm_slack_user: the digest goes to the DM with them
# auth.test errors that mean the token is gone for good (uninstalled, revoked), not a passing failure.
DEAD_TOKEN = frozenset({"invalid_auth", "not_authed", "token_revoked", "account_inactive"})

Sleep = Callable[[float], None]
Clock = Callable[[], float]


class DigestError(DigestPostError):
    """Slack refused the digest (the message says which method and why)."""


class SleepingRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (wait ``Retry-After`` plus jitter, then retry) with its sleep injectable."""

    def __init__(self, max_retry_count: int = 1, *, sleep: Sleep = time.sleep, jitter: float = 1.0) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self._sleep = sleep
        self._jitter = jitter

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        if response is None:
            raise error or RuntimeError("429 retry without a response")
        state.next_attempt_requested = True
        after = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), ["1"])
        try:
            seconds = float(after[0])
        except (TypeError, ValueError, IndexError):
            seconds = 1.0
        self._sleep(seconds + random.random() * self._jitter)
        state.increment_current_attempt()


def build_client(slack: SlackConfig, token: SecretStr, *, sleep: Sleep = time.sleep) -> WebClient:
    """The Web API client for ``[slack]``: its ``base_url``, 429 and connection retries."""
    return WebClient(
        token=token.get_secret_value(),
        base_url=slack.base_url,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=1),
            SleepingRateLimitRetryHandler(sleep=sleep),
        ],
    )


class Pacer:
    """At most one message per ``interval`` seconds per channel (Slack's chat.postMessage allowance)."""

    def __init__(
        self, interval: float = 1.0, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        self._last: dict[str, float] = {}

    def wait(self, channel: str) -> None:
        """Sleep until ``channel`` may take another message, and count this one."""
        last = self._last.get(channel)
        if last is not None:
            gap = self._interval - (self._clock() - last)
            if gap > 0:
                self._sleep(gap)
        self._last[channel] = self._clock()


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot token is (``auth.test``): its workspace, bot user and bot id."""

    team_id: str
    user_id: str
    bot_id: str

    def wrote(self, message: dict[str, Any]) -> bool:
        """True when ``message`` (as ``conversations.history`` lists it) was posted by this bot."""
        if self.bot_id and message.get("bot_id"):
            return bool(message.get("bot_id") == self.bot_id)
        return bool(self.user_id) and message.get("user") == self.user_id


def whoami(client: WebClient) -> BotIdentity:
    """The token's identity (one ``auth.test``); ``SlackApiError`` as the client raised it."""
    response = client.auth_test()
    return BotIdentity(
        str(response.get("team_id") or ""),
        str(response.get("user_id") or ""),
        str(response.get("bot_id") or ""),
    )


def _metadata(agenda: Agenda) -> dict[str, Any]:
    return {"event_type": EVENT_TYPE, "event_payload": {"project": agenda.project, "cycle": agenda.cycle}}


def content_hash(payload: dict[str, Any]) -> str:
    """The hash the ledger keeps, to skip an edit that would change nothing."""
    return hashlib.sha256(payload_hash_input(payload)).hexdigest()


def resolve_channel(client: WebClient, channel: str) -> str:
    """A channel ID for ``channel``: an ID as is; a user ID (``pm_slack_user``) the DM with them
    (``conversations.open``); ``#name`` looked up by ``conversations.list``."""
    if _CHANNEL_ID.fullmatch(channel):
        return channel
    if _USER_ID.fullmatch(channel):
        return open_dm(client, channel)
    name = channel.removeprefix("#")
    cursor = None
    while True:
        page = client.conversations_list(
            types="public_channel,private_channel", exclude_archived=True, limit=200, cursor=cursor
        )
        for entry in page.get("channels") or []:
            if entry.get("name") == name:
                return str(entry["id"])
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            raise DigestError(f"channel {channel} not found (is refinebot invited to it?)")


def find_tagged(client: WebClient, channel: str, project: str, cycle: str, me: BotIdentity) -> str | None:
    """The ts of a recent message in ``channel`` that ``me`` posted, tagged as (project, cycle)'s digest."""
    cursor = None
    for _ in range(HISTORY_PAGES):
        page = client.conversations_history(
            channel=channel, include_all_metadata=True, limit=100, cursor=cursor
        )
        for message in page.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            ours = metadata.get("event_type") == EVENT_TYPE and payload == {
                "project": project,
                "cycle": cycle,
            }
            if ours and me.wrote(message):
                return str(message["ts"])
            if ours:
                logger.warning(
                    "digest %s %s: message %s in %s carries refinebot's tag but another app posted it; "
                    "not taken for ours",
                    project,
                    cycle,
                    message.get("ts"),
                    channel,
                )
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return None
    return None


def open_dm(client: WebClient, user: str) -> str:
    """The DM channel with ``user`` (``pm_slack_user``), for a copy of the digest."""
    response = client.conversations_open(users=[user])
    return str(response["channel"]["id"])


def _api(name: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except SlackApiError as exc:
        error = exc.response.get("error", "unknown") if exc.response is not None else "unknown"
        raise DigestError(f"Slack {name} failed: {error}") from None


def post_digest(
    agenda: Agenda,
    blocks: dict[str, Any],
    channel: str,
    ledger: DigestLedger,
    client: WebClient,
    *,
    pacer: Pacer | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    identity: Callable[[], BotIdentity] | None = None,
) -> DigestOutcome:
    """Make ``channel`` show ``blocks`` (the payload of ``agenda``) as the one digest of the agenda's cycle.

    ``channel`` is a channel ID, ``#name`` or a user ID (their DM). ``identity`` says who the bot is for
    the crash lookup (default: one ``auth.test``, only when that lookup is needed)."""
    pacer = pacer or Pacer()
    me = identity or (lambda: whoami(client))
    payload = {**blocks, "metadata": _metadata(agenda)}
    digest_hash = content_hash(payload)
    lookup = "conversations.open" if _USER_ID.fullmatch(channel) else "conversations.list"
    channel_id = _api(lookup, lambda: resolve_channel(client, channel))

    def outcome(ts: str, action: DigestAction) -> DigestOutcome:
        if action is not DigestAction.UNCHANGED:
            ledger.save_digest(agenda.project, agenda.cycle, channel_id, ts, digest_hash, now())
        logger.info(
            "digest %s %s in %s: %s (ts %s)", agenda.project, agenda.cycle, channel_id, action.value, ts
        )
        return DigestOutcome(agenda.project, agenda.cycle, channel_id, ts, action, digest_hash)

    def update(ts: str) -> bool:
        pacer.wait(channel_id)
        try:
            client.chat_update(channel=channel_id, ts=ts, **payload)
        except SlackApiError as exc:
            if exc.response is not None and exc.response.get("error") == "message_not_found":
                logger.warning(
                    "digest %s %s: message %s was deleted; posting anew", agenda.project, agenda.cycle, ts
                )
                return False
            raise DigestError(f"Slack chat.update failed: {exc.response.get('error', 'unknown')}") from None
        return True

    record = ledger.digest(agenda.project, agenda.cycle, channel_id)
    if record is not None:
        if record.content_hash == digest_hash:
            return outcome(record.message_ts, DigestAction.UNCHANGED)
        if update(record.message_ts):
            return outcome(record.message_ts, DigestAction.UPDATED)
    else:
        tagged = _api(
            "conversations.history",
            lambda: find_tagged(client, channel_id, agenda.project, agenda.cycle, _api("auth.test", me)),
        )
        if tagged is not None and update(tagged):
            return outcome(tagged, DigestAction.RECOVERED)
    pacer.wait(channel_id)
    response = _api(
        "chat.postMessage",
        lambda: client.chat_postMessage(
            channel=channel_id, unfurl_links=False, unfurl_media=False, **payload
        ),
    )
    # tests: die after Slack took the post, before the ledger knows it (a DM copy has its own step name).
    fault_point("digest-dm-post" if channel_id.startswith("D") else "digest-post")
    return outcome(str(response["ts"]), DigestAction.POSTED)


class SlackDigestPoster:
    """The cycle's ``DigestPoster`` over a ``WebClient`` and a ledger (one pacer for the whole run).

    With ``state`` (the store's sync state) it honours the posting switch: while it is off for the
    token's workspace every post is ``SKIPPED`` (one warning per run), and nothing is sent to Slack but
    the ``auth.test`` that says which workspace the token is for.
    With ``charts``, each cycle's readiness chart goes into the digest's thread once.
    """

    def __init__(
        self,
        client: WebClient,
        ledger: DigestLedger,
        *,
        pacer: Pacer | None = None,
        state: posting.StateStore | None = None,
        charts: ChartPoster | None = None,
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._pacer = pacer or Pacer()
        self._state = state
        self._charts = charts
        self._me: BotIdentity | None = None
        self._off: str | None = None
        self._off_checked = False

    def identity(self) -> BotIdentity:
        """The bot's identity, asked of Slack once per run."""
        if self._me is None:
            self._me = whoami(self._client)
        return self._me

    def posting_off(self) -> str | None:
        """Why posting is switched off for this token's workspace, or None (checked once per run)."""
        if self._off_checked or self._state is None:
            return self._off
        self._off_checked = True
        disabled = posting.disabled_workspaces(self._state)
        if not disabled:
            return None
        try:
            team = self.identity().team_id
        except SlackApiError as exc:
            error = exc.response.get("error", "unknown") if exc.response is not None else "unknown"
            if error not in DEAD_TOKEN:
                raise DigestError(f"Slack auth.test failed: {error}") from None
            # The token died with the uninstall: whichever workspace it was for, posting is off.
            first, why = next(iter(disabled.items()))
            self._off = (
                f"Slack posting is disabled for workspace {first} ({why}; the bot token answers {error})"
            )
        else:
            reason = disabled.get(team)
            if reason is not None:
                self._off = f"Slack posting is disabled for workspace {team} ({reason})"
        if self._off is not None:
            logger.warning(
                "%s: the digest is not posted; after reinstalling the app run `refinebot digest --enable-slack`",
                self._off,
            )
        return self._off

    def post(self, agenda: Agenda, payload: dict[str, Any], channel: str) -> DigestOutcome:
        """Post or edit ``agenda``'s digest in ``channel``; ``DigestError`` when Slack refused or was unreachable."""
        try:
            off = self.posting_off()
            if off is not None:
                return DigestOutcome(agenda.project, agenda.cycle, channel, "", DigestAction.SKIPPED, "", off)
            outcome = post_digest(
                agenda,
                payload,
                channel,
                self._ledger,
                self._client,
                pacer=self._pacer,
                identity=self.identity,
            )
        except OSError as exc:  # the connection retry handler gave up
            raise DigestError(f"Slack unreachable at {self._client.base_url}: {type(exc).__name__}") from None
        if self._charts is not None:
            self._charts.after_digest(agenda, outcome, self._pacer.wait)  # never raises: logged instead
        return outcome
