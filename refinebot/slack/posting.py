"""The stored "Slack posting is off" switch, per workspace: set by ``tokens_revoked`` / ``app_uninstalled``
(``refinebot serve``), read by the digest poster and the listeners, cleared by ``refinebot digest --enable-slack``.

It lives in the store's sync-state table under ``POSTING_KEY`` (``{"disabled": {team_id: reason}}``), so a
restarted ``serve``, a cron-run ``refinebot digest`` and every replica see the same switch. Only the
workspace id and why are kept: never a token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

POSTING_KEY = "refinebot:slack:posting"  # sync_state row: workspaces whose tokens were revoked


class StateStore(Protocol):
    """The part of the store's sync state the switch uses (``Store.sync_state`` satisfies it)."""

    def load(self, key: str) -> Any | None:
        """The value saved under ``key``, or None."""
        ...

    def save(self, key: str, value: Any) -> None:
        """Save ``value`` under ``key``."""
        ...


def disabled_workspaces(state: StateStore) -> dict[str, str]:
    """Workspace id -> why posting to it is off (empty while posting is on everywhere)."""
    raw = state.load(POSTING_KEY) or {}
    disabled = raw.get("disabled") if isinstance(raw, dict) else None
    return {str(team): str(reason) for team, reason in (disabled or {}).items() if reason}


def disable(state: StateStore, team: str, reason: str, now: datetime) -> None:
    """Stop posting to ``team`` (``reason``: the event that said so), persisted."""
    disabled = disabled_workspaces(state)
    disabled[team] = f"{reason} at {now.isoformat(timespec='seconds')}"
    state.save(POSTING_KEY, {"disabled": disabled})


def enable(state: StateStore, team: str | None = None) -> dict[str, str]:
    """Turn posting back on for ``team`` (None: every workspace); the entries that were cleared."""
    disabled = disabled_workspaces(state)
    cleared = {t: r for t, r in disabled.items() if team is None or t == team}
    if cleared:
        state.save(POSTING_KEY, {"disabled": {t: r for t, r in disabled.items() if t not in cleared}})
    return cleared
