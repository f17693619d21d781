"""refinebot.logs: JSON lines off a terminal, plain text on one, extra fields kept, secrets masked in the
message and in a traceback; ``secret_values`` finds every token the config names."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from refinebot import logs
from refinebot.config import RefinebotConfig

SECRET = "xoxb-very-secret-value"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_off_a_terminal_each_record_is_one_json_line_with_its_fields_and_no_secret() -> None:
    stream = io.StringIO()
    logs.configure(logging.INFO, "auto", secrets=[SECRET], stream=stream)
    log = logging.getLogger("refinebot.test")
    log.info("token is %s", SECRET, extra={"project": "SHOP", "cycle": "2026-W50"})
    try:
        raise RuntimeError(f"refused {SECRET}")
    except RuntimeError:
        log.exception("it failed")
    log.debug("below the level")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "token is ***"
    assert (first["level"], first["logger"], first["project"], first["cycle"]) == (
        "INFO", "refinebot.test", "SHOP", "2026-W50",
    )  # fmt: skip
    assert first["time"].endswith("+00:00")
    assert second["level"] == "ERROR" and "RuntimeError: refused ***" in second["exc"]
    assert SECRET not in stream.getvalue()
    assert logs.Redactor(["abc"]).redact("abc def") == "abc def"  # too short to be a secret worth masking


def test_on_a_terminal_lines_are_plain_text_and_masked() -> None:
    stream = Terminal()
    logs.configure(logging.WARNING, "auto", secrets=[SECRET], stream=stream)
    logging.getLogger("refinebot.test").warning("sent %s", SECRET)
    assert stream.getvalue() == "WARNING refinebot.test: sent ***\n"


def test_the_format_can_be_forced_and_the_env_var_wins_over_the_default() -> None:
    assert logs.resolve_format("json", Terminal()) == "json"
    assert logs.resolve_format("text", io.StringIO()) == "text"
    assert logs.format_from_env("text", {logs.FORMAT_ENV: "JSON"}) == "json"
    assert logs.format_from_env("auto", {logs.FORMAT_ENV: "fancy"}) == "auto"
    assert logs.format_from_env("text", {}) == "text"


def test_secret_values_are_the_slack_tokens_and_every_sources_token() -> None:
    config = RefinebotConfig.model_validate(
        {
            "slack": {"bot_token_env": "BOT", "signing_secret_env": "SIGN"},
            "sources": {
                "jira": {"kind": "jira", "url": "https://x.atlassian.net", "token_env": "JIRA"},
                "ado": {"kind": "azure_devops", "url": "https://dev.azure.com/o", "token_env": "ADO"},
                "file": {"kind": "file", "path": "b.json"},
            },
        }
    )
    environ = {"BOT": "b-token", "SIGN": "s-secret", "JIRA": "j-token", "ADO": "a-token", "OTHER": "x"}
    assert sorted(logs.secret_values(config, environ)) == ["a-token", "b-token", "j-token", "s-secret"]
