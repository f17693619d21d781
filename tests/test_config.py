"""Config loading: the example is valid, every bad-config case names file, dotted key and reason, all at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import SecretStr

from refinebot.config import ConfigError, LoadedConfig, load_config, merge_rule_options
from rules.registry import build_registry
from rules.size import OversizedOptions
from tests.cli_process import ROOT, run_cli

REGISTRY = build_registry(plugins=False)


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "refinebot.toml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    (tmp_path / "backlog.json").write_text('{"issues": []}', encoding="utf-8")
    return path


def problems(path: Path, env: dict[str, str] | None = None) -> set[tuple[str, str]]:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in (env or {}).items():
            mp.setenv(key, value)
        with pytest.raises(ConfigError) as caught:
            load_config(path, REGISTRY)
    assert all(p.file == str(path) for p in caught.value.problems)
    return {(p.key, p.reason) for p in caught.value.problems}


GOOD = """
    [sources.files]
    kind = "file"
    path = "backlog.json"

    [projects.SHOP]
    source = "files"
"""


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JIRA_API_TOKEN", raising=False)
    loaded = load_config(ROOT / "config.example.toml", REGISTRY)
    options = loaded.rule_options["SHOP"]
    assert options["oversized-story"].max_points == 13  # project override beats [rules]
    assert options["stale-item"].enabled is False
    assert options["missing-description"].min_length == 30
    assert loaded.config.projects["SHOP"].schedule == "mon 09:00"
    assert loaded.config.projects["SHOP"].cron == "0 9 * * mon"


@pytest.mark.parametrize(
    ("schedule", "cron"),
    [("mon 09:00", "0 9 * * mon"), ("Mon, thu 9:30", "30 9 * * mon,thu"), ("0 9 * * MON", "0 9 * * MON")],
)
def test_schedule_takes_the_short_form_or_cron(tmp_path: Path, schedule: str, cron: str) -> None:
    path = tmp_path / "refinebot.toml"
    path.write_text(GOOD + f'schedule = "{schedule}"\n', encoding="utf-8")
    (tmp_path / "backlog.json").write_text("[]", encoding="utf-8")
    assert load_config(path, REGISTRY).config.projects["SHOP"].cron == cron


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        ("mun 09:00", "unknown day 'mun'"),
        ("mon 24:00", "not a time of day"),
        ("weekly", "5-field cron"),
        ("0 9 * * XYZ", "not a valid cron expression"),
    ],
)
def test_a_bad_schedule_names_its_key(tmp_path: Path, schedule: str, reason: str) -> None:
    path = tmp_path / "refinebot.toml"
    path.write_text(GOOD + f'schedule = "{schedule}"\n', encoding="utf-8")
    (tmp_path / "backlog.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path, REGISTRY)
    assert any(p.key == "projects.SHOP.schedule" and reason in p.reason for p in raised.value.problems), [
        str(p) for p in raised.value.problems
    ]


def test_merge_order_is_defaults_then_rules_then_project() -> None:
    assert merge_rule_options(OversizedOptions, None, None).max_points == 8
    assert merge_rule_options(OversizedOptions, {"max_points": 5}, None).max_points == 5
    merged = merge_rule_options(OversizedOptions, {"max_points": 5, "enabled": False}, {"max_points": 13})
    assert (merged.max_points, merged.enabled) == (13, False)


def test_every_rule_gets_options_even_when_unconfigured(tmp_path: Path) -> None:
    loaded: LoadedConfig = load_config(write(tmp_path, GOOD), REGISTRY)
    assert set(loaded.rule_options["SHOP"]) == set(REGISTRY.names())


def test_unknown_top_level_and_nested_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD
        + """
    colour = "blue"
    [slack]
    bot_token = "xoxb-secret-in-the-file"
    """,
    )
    found = problems(path)
    assert ("slack.bot_token", "unknown key") in found
    assert ("colour", "unknown key") not in found  # it belongs to [projects.SHOP]: named there
    assert ("projects.SHOP.colour", "unknown key") in found


def test_unknown_rule_names_in_both_layers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
    [sources.files]
    kind = "file"
    path = "backlog.json"
    [rules]
    no-such-rule = { enabled = false }
    [projects.SHOP]
    source = "files"
    [projects.SHOP.rules]
    oversize-story = { max_points = 13 }
    """,
    )
    assert problems(path) == {
        ("rules.no-such-rule", "unknown rule name"),
        ("projects.SHOP.rules.oversize-story", "unknown rule name"),
    }


def test_wrong_types_and_unknown_options_name_the_layer(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
    [sources.files]
    kind = "file"
    path = "backlog.json"
    [rules]
    stale-item = { days = "ninety" }
    [projects.SHOP]
    source = "files"
    agenda_size = "six"
    [projects.SHOP.rules]
    oversized-story = { max_points = 13, max_pts = 5 }
    """,
    )
    found = problems(path)
    keys = {key for key, _ in found}
    assert keys == {
        "rules.stale-item.days",
        "projects.SHOP.agenda_size",
        "projects.SHOP.rules.oversized-story.max_pts",
    }
    reason = dict(found)["projects.SHOP.rules.oversized-story.max_pts"]
    assert reason.startswith("unknown option (allowed: ") and "max_points" in reason


def test_project_naming_a_missing_source(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + '\n[projects.PAY]\nsource = "jira"\n')
    assert problems(path) == {("projects.PAY.source", "unknown source 'jira' (sources: files)")}


def test_missing_token_env_only_when_the_source_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RB_TEST_JIRA_TOKEN", raising=False)
    unused = (
        GOOD
        + """
    [sources.jira]
    kind = "jira"
    url = "https://example.atlassian.net"
    email = "bot@example.com"
    token_env = "RB_TEST_JIRA_TOKEN"
    """
    )
    load_config(write(tmp_path, unused), REGISTRY)  # defined but unused: fine
    used = unused + '\n[projects.PAY]\nsource = "jira"\n'
    path = write(tmp_path, used)
    assert problems(path) == {
        (
            "sources.jira.token_env",
            "environment variable RB_TEST_JIRA_TOKEN is not set (it must hold the token)",
        )
    }
    monkeypatch.setenv("RB_TEST_JIRA_TOKEN", "s3cret-value")
    loaded = load_config(path, REGISTRY)
    token = loaded.config.sources["jira"].token()
    assert isinstance(token, SecretStr)
    assert token.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(loaded.config)


def test_bad_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
    timezone = "Mars/Olympus"
    [sources.jira]
    kind = "jira"
    url = "example.atlassian.net"
    token_env = "X"
    [sources.odd]
    kind = "gitlab"
    [sources.nokind]
    url = "https://x"
    [sources.files]
    kind = "file"
    path = "missing.json"
    [projects.SHOP]
    source = "files"
    schedule = "every monday"
    agenda_size = 0
    """,
    )
    found = dict(problems(path))
    assert found["timezone"].startswith("unknown time zone 'Mars/Olympus'")
    assert found["sources.jira.url"] == "must be an http:// or https:// URL"
    assert found["sources.odd"] == "unknown kind 'gitlab' (expected jira, azure_devops or file)"
    assert found["sources.nokind"] == "required key 'kind' is missing (jira, azure_devops or file)"
    assert "5-field cron" in found["projects.SHOP.schedule"]
    assert found["projects.SHOP.agenda_size"] == "Input should be greater than or equal to 1"


def test_missing_file_path_of_a_used_file_source(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("backlog.json", "nowhere.json"))
    assert problems(path) == {("sources.files.path", f"file not found: {tmp_path / 'nowhere.json'}")}


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[projects.SHOP\nsource = 1\n")
    ((key, reason),) = problems(path)
    assert key == "" and reason.startswith("not valid TOML")
    assert problems(tmp_path / "absent.toml") == {("", "file not found")}


def test_config_check_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
    [sources.files]
    kind = "file"
    path = "backlog.json"
    [rules]
    no-such-rule = {}
    [projects.SHOP]
    source = "nowhere"
    colour = 1
    """,
    )
    result = run_cli(["config", "check", "--config", str(path)])
    assert result.code == 1
    lines = sorted(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert lines == [
        f"error: {path}: projects.SHOP.colour: unknown key",
        f"error: {path}: projects.SHOP.source: unknown source 'nowhere' (sources: files)",
        f"error: {path}: rules.no-such-rule: unknown rule name",
    ], result.stderr
    path.write_text(path.read_text().replace("colour = 1\n", ""))
    result = run_cli(["config", "check", "--config", str(path)])
    lines = sorted(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert lines == [
        f"error: {path}: projects.SHOP.source: unknown source 'nowhere' (sources: files)",
        f"error: {path}: rules.no-such-rule: unknown rule name",
    ]
    assert result.code == 1


def test_config_check_ok(tmp_path: Path) -> None:
    result = run_cli(["config", "check", "--config", str(write(tmp_path, GOOD))])
    assert result.code == 0
    assert "ok" in result.stdout and "projects: SHOP" in result.stdout


def test_schema_errors_env_and_paths_are_reported_in_one_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RB_TEST_UNSET", raising=False)
    path = write(
        tmp_path,
        """
    timezone = "Bad/Zone"
    [sources.files]
    kind = "file"
    path = "nowhere.json"
    [sources.jira]
    kind = "jira"
    url = "https://example.atlassian.net"
    token_env = "RB_TEST_UNSET"
    [projects.A]
    source = "files"
    [projects.B]
    source = "jira"
    """,
    )
    assert {key for key, _ in problems(path)} == {"timezone", "sources.files.path", "sources.jira.token_env"}


def test_a_pasted_secret_in_token_env_is_rejected_without_echoing_it(tmp_path: Path) -> None:
    secret = "ATATT3xFfGF0-very-secret-token/+="
    path = write(
        tmp_path,
        GOOD + f'\n[sources.jira]\nkind = "jira"\nurl = "https://x.atlassian.net"\ntoken_env = "{secret}"\n'
        '[projects.B]\nsource = "jira"\n',
    )
    found = problems(path)
    assert found == {
        (
            "sources.jira.token_env",
            "must be the name of an environment variable (letters, digits and _), not the secret itself",
        )
    }
    result = run_cli(["config", "check", "-c", str(path)])
    assert secret not in result.stdout + result.stderr


def test_errors_from_environment_overrides_name_the_variable(tmp_path: Path) -> None:
    result = run_cli(
        ["config", "check", "-c", str(write(tmp_path, GOOD))], env={"REFINEBOT_TIMEZONE": "Bad/Zone"}
    )
    assert result.code == 1
    assert (
        "timezone (from environment variable REFINEBOT_TIMEZONE): unknown time zone 'Bad/Zone'"
        in result.stderr
    )


def test_infinite_or_nan_options_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "\n[projects.SHOP.rules]\noversized-story = { max_points = inf }\n")
    assert {key for key, _ in problems(path)} == {"projects.SHOP.rules.oversized-story.max_points"}


def test_credentials_in_a_source_url_are_rejected_without_echoing_them(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD
        + '\n[sources.jira]\nkind = "jira"\nurl = "https://bob:S3CR3T-PAT@jira.example.com"\ntoken_env = "X"\n',
    )
    found = problems(path)
    assert found == {
        (
            "sources.jira.url",
            "must not contain a user name or password (put the token in the variable token_env names)",
        )
    }
    result = run_cli(["config", "check", "-c", str(path)])
    assert "S3CR3T" not in result.stdout + result.stderr
