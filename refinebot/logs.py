"""Where refinebot's log lines go and how they look: JSON lines for machines, plain lines for people,
and never a secret.

``configure`` installs one stderr handler on the root logger. ``json`` writes one JSON object per line
(``time``, ``level``, ``logger``, ``message``, any ``extra=`` fields such as ``project`` and ``cycle``,
and ``exc`` for a traceback); ``text`` writes ``LEVEL logger: message``; ``auto`` picks JSON when
stderr is not a terminal (a container, systemd's journal, a pipe) and text on a terminal.

Secrets: every formatted line, traceback included, goes through a ``Redactor`` that replaces the
values of the configured secrets (the tokens the environment variables named in the config hold)
with ``***``. The code never logs a secret on purpose; this is the net for a library that does
(an SDK's debug line with a request header, an exception quoting a URL).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from refinebot.config import RefinebotConfig

LogFormat = Literal["auto", "json", "text"]
FORMAT_ENV = "REFINEBOT_LOG_FORMAT"
MASK = "***"
MIN_SECRET = 4  # shorter values are not secrets worth masking (and would mask half the line)
TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"

# The attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class Redactor:
    """Replaces known secret values in text with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with every secret value masked."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


def secret_values(config: RefinebotConfig, environ: Mapping[str, str] = os.environ) -> list[str]:
    """The values of every secret the config names: Slack's tokens and each source's ``token_env``."""
    slack = config.slack
    names = [slack.bot_token_env, slack.signing_secret_env, slack.app_token_env or "SLACK_APP_TOKEN"]
    names += [getattr(source, "token_env", None) or "" for source in config.sources.values()]
    return [environ[name] for name in names if name and environ.get(name)]


class JsonFormatter(logging.Formatter):
    """One JSON object per record, secrets masked."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self._redactor.redact(json.dumps(entry, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message``, secrets masked."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__(TEXT_FORMAT)
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        """The record as plain text."""
        return self._redactor.redact(super().format(record))


def resolve_format(fmt: LogFormat, stream: TextIO) -> Literal["json", "text"]:
    """``auto`` as JSON off a terminal, text on one."""
    if fmt != "auto":
        return fmt
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def format_from_env(default: LogFormat, environ: Mapping[str, str] = os.environ) -> LogFormat:
    """``REFINEBOT_LOG_FORMAT`` (auto, json or text) when set to one of those, else ``default``."""
    value = environ.get(FORMAT_ENV, "").strip().lower()
    return value if value in ("auto", "json", "text") else default  # type: ignore[return-value]


def configure(
    level: int, fmt: LogFormat = "text", *, secrets: Iterable[str] = (), stream: TextIO | None = None
) -> None:
    """Send every log line to ``stream`` (stderr) at ``level`` in ``fmt``, with ``secrets`` masked."""
    stream = stream or sys.stderr
    redactor = Redactor(secrets)
    handler = logging.StreamHandler(stream)
    chosen = resolve_format(fmt, stream)
    handler.setFormatter(JsonFormatter(redactor) if chosen == "json" else TextFormatter(redactor))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
