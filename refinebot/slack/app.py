"""``build_app``: the one place a slack-bolt ``App`` is made, with refinebot's listeners registered on it.

Called by ``refinebot serve`` (and tests) with everything injected: the ``WebClient`` (its ``base_url``
points tests at a fake), the signing secret and the ``SlackServices``. No module-level app, no globals.
Bolt verifies every HTTP request's signature and timestamp (401 otherwise) before the middleware here
drops retried deliveries.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from refinebot.slack.actions import ACTION_ID_PATTERN
from refinebot.slack.listeners import COMMAND, SlackServices, dedupe, on_button, on_command, on_revoked


def build_app(services: SlackServices, client: WebClient, signing_secret: str | None) -> App:
    """The Slack app: digest buttons, ``/refinebot``, token revocation; retries dropped.

    ``signing_secret`` None is for Socket Mode only (bolt skips signature checks there).
    """
    app = App(
        client=client,
        signing_secret=signing_secret,
        # auth.test at startup would make serve fail hard when Slack is briefly unreachable; the first
        # request's own authorization call reports a bad token instead.
        token_verification_enabled=False,
        request_verification_enabled=signing_secret is not None,
        process_before_response=False,  # ack first, the listener goes on in bolt's thread pool
    )

    def retries(req: Any, resp: Any, next: Any) -> Any:
        return dedupe(services, req, resp, next)

    def button(ack: Any, body: Any, client: WebClient) -> None:
        on_button(services, ack, body, client)

    def command(ack: Any, command: Any) -> None:
        on_command(services, ack, command)

    def revoked(body: Any, event: Any) -> None:
        on_revoked(services, body, event)

    app.middleware(retries)
    app.action(ACTION_ID_PATTERN)(button)
    app.command(COMMAND)(command)
    app.event("tokens_revoked")(revoked)
    app.event("app_uninstalled")(revoked)
    return app
