"""Load and validate the admin's TOML configuration, and merge rule options per project.

The file is the contract: top-level ``database_url`` and ``timezone``, ``[slack]``, ``[sources.NAME]``,
``[rules]`` defaults and ``[projects.KEY]`` with ``[projects.KEY.rules]`` overrides. Every problem is reported as
a ``ConfigProblem`` naming the file, the dotted key and the reason; ``load_config`` raises them all at once.
Secrets never live in the file: sources name the environment variable that holds them (``token_env``).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CONFIG_PATH = Path("refinebot.toml")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The name of an environment variable, never its value: a pasted secret fails this and is not echoed back.
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config file."""

    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key or '<top level>'}: {self.reason}"


class ConfigError(Exception):
    """A config file that cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackConfig(_Strict):
    """Where the Slack bot finds its credentials (env var names, never the secrets)."""

    bot_token_env: EnvName = "SLACK_BOT_TOKEN"
    signing_secret_env: EnvName = "SLACK_SIGNING_SECRET"
    app_token_env: EnvName | None = None
    default_channel: str | None = None
    # How `serve` talks to Slack: Socket Mode (no public URL) or HTTP on host:port (POST /slack/events).
    mode: Literal["socket", "http"] = "socket"
    base_url: str = "https://slack.com/api/"  # the Web API; tests point it at a fake
    port: int = Field(default=3000, ge=1, le=65535)
    host: str = "0.0.0.0"  # every interface: serve usually runs in a container
    admin_channel: str | None = None  # where refinebot reports its own problems (a revoked token, say)

    @field_validator("base_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return _check_url(value) + "/"

    def bot_token(self) -> SecretStr | None:
        """The bot token, read from the variable ``bot_token_env`` names (None when unset)."""
        value = os.environ.get(self.bot_token_env)
        return SecretStr(value) if value else None


class _HttpSourceBase(_Strict):
    """What every vendor API source shares (the same keys for Jira and Azure DevOps): URL, token, transport."""

    url: str
    token_env: EnvName

    # Retries of throttled (429, ADO's delayed 200) and failing (5xx, dropped connection) requests:
    # Retry-After is honoured, otherwise exponential backoff with jitter from base up to max.
    retry_attempts: int = Field(default=5, ge=1, le=20)
    backoff_base_seconds: float = Field(default=1.0, gt=0, le=60)
    backoff_max_seconds: float = Field(default=60.0, gt=0, le=600)
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    # The whole of one answer, body included: per-read timeouts never end a server trickling bytes.
    request_deadline_seconds: float = Field(default=120.0, gt=0, le=3600)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_url(value)

    def token(self) -> SecretStr | None:
        """The secret, read from the environment variable named by ``token_env`` (None when unset)."""
        value = os.environ.get(self.token_env)
        return SecretStr(value) if value else None


class JiraSourceConfig(_HttpSourceBase):
    """A Jira Cloud site (``email`` + API token) or Data Center/Server (personal access token, no email)."""

    kind: Literal["jira"]
    email: str | None = None
    story_points_field: str | None = None
    sprint_field: str | None = None
    rank_field: str | None = None
    acceptance_criteria_field: str | None = None
    board_id: int | None = None
    page_size: int | None = Field(default=None, ge=1, le=5000)  # None: the largest the API allows


class AzureDevOpsSourceConfig(_HttpSourceBase):
    """An Azure DevOps organisation (``https://dev.azure.com/ORG``) or on-premises collection URL."""

    kind: Literal["azure_devops"]
    blocked_tag: str = "Blocked"
    effort_field: str | None = None
    order_field: str | None = None
    # Only items under this area path (WIQL UNDER), e.g. "Fabrikam\\Web".
    area_path: str | None = None
    # Where the connector keeps its process cache and incremental-sync state (and, if the SDK was
    # not imported yet, the SDK's own cache); None keeps them in memory only.
    cache_dir: Path | None = None
    # Ids per WIQL page; 20,000 is the service's result cap (VS402337).
    wiql_page_size: int = Field(default=20_000, ge=1, le=20_000)


class FileSourceConfig(_Strict):
    """An exported backlog on disk: Jira REST search JSON, Jira CSV export or Azure DevOps work-items JSON."""

    kind: Literal["file"]
    path: Path
    url: str | None = None
    story_points_field: str | None = None
    sprint_field: str | None = None
    rank_field: str | None = None
    acceptance_criteria_field: str | None = None


SourceConfig = Annotated[
    JiraSourceConfig | AzureDevOpsSourceConfig | FileSourceConfig, Field(discriminator="kind")
]

RuleTable = dict[str, dict[str, Any]]


class ProjectConfig(_Strict):
    """One backlog to keep ready: where it comes from, where its agenda goes and which rules apply."""

    source: str
    query: str | None = None
    slack_channel: str | None = None
    schedule: str = "0 9 * * MON"
    timezone: str | None = None  # the project's own zone (cycles, schedule); None: the top-level timezone
    agenda_size: int = Field(default=8, ge=1, le=20)
    session_minutes: int = Field(default=60, ge=5, le=480)
    # The agenda's discussion estimate per item; oversized and possible-duplicate items take the larger one.
    item_minutes: int = Field(default=5, ge=1, le=120)
    large_item_minutes: int = Field(default=10, ge=1, le=240)
    pm_slack_user: str | None = Field(default=None, pattern=r"^[UW][A-Z0-9]{2,}$")  # gets the digest as a DM
    comment_on_tickets: bool = False
    ready_top_n: int = Field(default=16, ge=1, le=200)  # default: twice agenda_size
    rules: RuleTable = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _top_n_follows_agenda(cls, data: Any) -> Any:
        if (
            isinstance(data, Mapping)
            and "ready_top_n" not in data
            and isinstance(data.get("agenda_size"), int)
        ):
            return {**data, "ready_top_n": 2 * data["agenda_size"]}
        return data

    @field_validator("timezone")
    @classmethod
    def _project_zone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        cron_of(value)  # a ValueError is reported under projects.KEY.schedule
        return value

    @property
    def cron(self) -> str:
        """``schedule`` as a 5-field cron string (the short form "mon 09:00" converted)."""
        return cron_of(self.schedule)

    @property
    def cycle_cron(self) -> str | None:
        """The cron whose periods are this project's cycles: its ``schedule`` when the file sets one; None
        (ISO weeks, as before schedules existed) when it runs on the default schedule."""
        return self.cron if "schedule" in self.model_fields_set else None


class SchedulerConfig(_Strict):
    """How ``refinebot serve`` runs the projects' schedules."""

    # A run missed while serve was down (or busy) is caught up once if it is at most this late.
    misfire_grace_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    # A failed scheduled run is tried again after this long, while still within the grace time.
    retry_minutes: int = Field(default=10, ge=1, le=24 * 60)


# Schedules: the short form people write ("mon 09:00", "mon,thu 09:30") or a 5-field cron. Checked
# here, at the edge; the scheduler only ever sees cron_of's 5-field form.
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SHORT = re.compile(r"^\s*([A-Za-z]{3}(?:\s*,\s*[A-Za-z]{3})*)\s+(\d{1,2}):(\d{2})\s*$")


def cron_of(schedule: str) -> str:
    """``schedule`` as a 5-field cron string ("mon,thu 09:30" -> "30 9 * * mon,thu")."""
    short = _SHORT.match(schedule)
    if short:
        days = [day.strip().lower() for day in short.group(1).split(",")]
        unknown = [day for day in days if day not in DAYS]
        if unknown:
            raise ValueError(f"unknown day {unknown[0]!r} (use {', '.join(DAYS)})")
        hour, minute = int(short.group(2)), int(short.group(3))
        if hour > 23 or minute > 59:
            raise ValueError(f"{short.group(2)}:{short.group(3)} is not a time of day (00:00-23:59)")
        return f"{minute} {hour} * * {','.join(dict.fromkeys(days))}"
    if len(schedule.split()) != 5:
        raise ValueError('use "mon 09:00", "mon,thu 09:30" or a 5-field cron string ("0 9 * * MON")')
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(schedule)
    except ValueError as exc:
        raise ValueError(f"not a valid cron expression ({exc})") from None
    return schedule


class RefinebotConfig(BaseSettings):
    """The whole configuration file."""

    model_config = SettingsConfigDict(
        extra="forbid", frozen=True, env_prefix="REFINEBOT_", env_nested_delimiter=None
    )

    database_url: str = "sqlite:///refinebot.db"
    timezone: str = "UTC"
    slack: SlackConfig = Field(default_factory=SlackConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    rules: RuleTable = Field(default_factory=dict)
    projects: dict[str, ProjectConfig] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)

    @property
    def tz(self) -> ZoneInfo:
        """The configured time zone."""
        return ZoneInfo(self.timezone)


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)") from None
    return value


def _check_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    authority = value.split("://", 1)[1].split("/", 1)[0]
    if "@" in authority:
        # Never echo it: the part before "@" is a credential. Tokens belong in the env var token_env names.
        raise ValueError(
            "must not contain a user name or password (put the token in the variable token_env names)"
        )
    return value.rstrip("/")


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated config together with the file it came from and the rule options resolved per project."""

    path: Path
    config: RefinebotConfig
    rule_options: Mapping[str, Mapping[str, Any]]  # project -> rule name -> options model instance

    def source_for(self, project: str) -> JiraSourceConfig | AzureDevOpsSourceConfig | FileSourceConfig:
        """The source a project reads from."""
        return self.config.sources[self.config.projects[project].source]

    def resolve_path(self, path: Path) -> Path:
        """Paths in the file are relative to the file's folder."""
        return path if path.is_absolute() else (self.path.parent / path)


class RuleCatalog(Protocol):
    """What config validation needs to know about rules.

    The caller supplies it (the rules registry) so that the core's config never imports the rules package:
    rules depend on the core, not the other way around.
    """

    def names(self) -> list[str]:
        """Every known rule name."""
        ...

    def options_model(self, name: str) -> type[BaseModel] | None:
        """The options model of the rule called ``name``, or None when no such rule exists."""
        ...


def merge_rule_options(
    defaults: type[BaseModel],
    global_table: Mapping[str, Any] | None,
    project_table: Mapping[str, Any] | None,
) -> BaseModel:
    """The one place options are merged: rule defaults < ``[rules]`` < ``[projects.KEY.rules]``."""
    merged: dict[str, Any] = {}
    merged.update(global_table or {})
    merged.update(project_table or {})
    return defaults.model_validate(merged)


def _dotted(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc)


def _pydantic_reason(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        given = (error.get("ctx") or {}).get("tag", error.get("input"))
        return f"unknown kind {given!r} (expected jira, azure_devops or file)"
    if kind == "union_tag_not_found":
        return "required key 'kind' is missing (jira, azure_devops or file)"
    if kind == "string_pattern_mismatch" and str(error["loc"][-1]).endswith("_env"):
        return "must be the name of an environment variable (letters, digits and _), not the secret itself"
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def _validation_problems(file: str, exc: ValidationError, data: Mapping[str, Any]) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        # Discriminated unions add the tag ("jira") to the location; it is not a key the admin wrote.
        if len(loc) >= 3 and loc[0] == "sources" and loc[2] in ("jira", "azure_devops", "file"):
            del loc[2]
        key = _dotted(loc)
        env = f"REFINEBOT_{loc[0].upper()}" if loc else ""
        if loc and loc[0] not in data and env in os.environ:
            key = f"{key} (from environment variable {env})"
        problems.append(ConfigProblem(file, key, _pydantic_reason(error)))
    return problems


def parse_config(
    data: Mapping[str, Any],
    path: Path,
    catalog: RuleCatalog,
    *,
    check_env: bool = True,
) -> LoadedConfig:
    """Validate already-parsed TOML data; raise ``ConfigError`` with every problem found.

    The checks that need no valid model (rule tables, source references, environment variables, file paths)
    run on the raw data, so one run reports everything, not one layer of problems at a time.
    """
    file = str(path)
    problems: list[ConfigProblem] = []
    config: RefinebotConfig | None = None
    try:
        config = RefinebotConfig.model_validate(dict(data))
    except ValidationError as exc:
        problems.extend(_validation_problems(file, exc, data))
    problems.extend(_raw_rule_table_problems(file, data, catalog))
    problems.extend(_source_reference_problems(file, data))
    if not data.get("projects"):
        problems.append(
            ConfigProblem(
                file,
                "projects",
                "no projects configured: add a [projects.KEY] table (see config.example.toml)",
            )
        )
    if check_env:
        problems.extend(_environment_problems(file, path, data))
    if config is None or problems:
        raise ConfigError(_dedupe(problems))

    rule_options: dict[str, dict[str, Any]] = {}
    for key, project in config.projects.items():
        table_key = f"projects.{key}.rules"
        resolved: dict[str, Any] = {}
        for rule_name in _all_rule_names(config.rules, project.rules, catalog):
            model = catalog.options_model(rule_name)
            if model is None:
                continue
            try:
                resolved[rule_name] = merge_rule_options(
                    model, config.rules.get(rule_name), project.rules.get(rule_name)
                )
            except ValidationError as exc:  # only cross-field checks can fail here: each layer passed alone
                for error in exc.errors():
                    field = str(error["loc"][0]) if error["loc"] else ""
                    where = table_key if field in project.rules.get(rule_name, {}) else "rules"
                    problems.append(
                        ConfigProblem(file, f"{where}.{rule_name}.{field}", _pydantic_reason(error))
                    )
        rule_options[key] = resolved

    if problems:
        raise ConfigError(_dedupe(problems))
    return LoadedConfig(path=path, config=config, rule_options=rule_options)


def _used_sources(data: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The raw tables of the sources that some project reads from."""
    sources = data.get("sources")
    projects = data.get("projects")
    if not isinstance(sources, Mapping) or not isinstance(projects, Mapping):
        return {}
    used = {p.get("source") for p in projects.values() if isinstance(p, Mapping)}
    return {name: table for name, table in sources.items() if name in used and isinstance(table, Mapping)}


def _environment_problems(file: str, path: Path, data: Mapping[str, Any]) -> list[ConfigProblem]:
    """Token variables that are not set and file paths that do not exist, for sources projects use."""
    problems = []
    for name, table in sorted(_used_sources(data).items()):
        env = table.get("token_env")
        if isinstance(env, str) and ENV_NAME.fullmatch(env) and not os.environ.get(env):
            problems.append(
                ConfigProblem(
                    file,
                    f"sources.{name}.token_env",
                    f"environment variable {env} is not set (it must hold the token)",
                )
            )
        raw_path = table.get("path")
        if table.get("kind") == "file" and isinstance(raw_path, str) and raw_path:
            file_path = Path(raw_path) if Path(raw_path).is_absolute() else path.parent / raw_path
            if not file_path.exists():
                problems.append(ConfigProblem(file, f"sources.{name}.path", f"file not found: {file_path}"))
    return problems


def _source_reference_problems(file: str, data: Mapping[str, Any]) -> list[ConfigProblem]:
    """Projects that name a source the file does not define."""
    sources = data.get("sources")
    defined = sorted(sources) if isinstance(sources, Mapping) else []
    projects = data.get("projects")
    problems = []
    for key, project in projects.items() if isinstance(projects, Mapping) else []:
        source = project.get("source") if isinstance(project, Mapping) else None
        if isinstance(source, str) and source not in defined:
            known = ", ".join(defined) or "none defined"
            problems.append(
                ConfigProblem(file, f"projects.{key}.source", f"unknown source {source!r} (sources: {known})")
            )
    return problems


def _raw_rule_table_problems(file: str, data: Mapping[str, Any], catalog: RuleCatalog) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    tables: list[tuple[str, Any]] = [("rules", data.get("rules"))]
    projects = data.get("projects")
    if isinstance(projects, Mapping):
        tables.extend(
            (f"projects.{key}.rules", value.get("rules"))
            for key, value in projects.items()
            if isinstance(value, Mapping)
        )
    for prefix, table in tables:
        if isinstance(table, Mapping):
            problems.extend(_check_rule_table(file, prefix, dict(table), catalog))
    return problems


def _dedupe(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    seen: dict[tuple[str, str, str], ConfigProblem] = {}
    for problem in problems:
        seen.setdefault((problem.file, problem.key, problem.reason), problem)
    return list(seen.values())


def _all_rule_names(global_table: RuleTable, project_table: RuleTable, catalog: RuleCatalog) -> list[str]:
    names = catalog.names()
    for name in [*global_table, *project_table]:
        if name not in names:
            names.append(name)
    return names


def _check_rule_table(file: str, prefix: str, table: RuleTable, catalog: RuleCatalog) -> list[ConfigProblem]:
    problems = []
    for name, options in table.items():
        model = catalog.options_model(name)
        if model is None:
            problems.append(ConfigProblem(file, f"{prefix}.{name}", "unknown rule name"))
            continue
        if not isinstance(options, Mapping):
            problems.append(
                ConfigProblem(
                    file, f"{prefix}.{name}", "must be a table of options, e.g. { enabled = false }"
                )
            )
            continue
        # Check this layer alone so the error names the layer that holds the mistake.
        try:
            model.model_validate(options)
        except ValidationError as exc:
            for error in exc.errors():
                field = _dotted(error["loc"])
                reason = _pydantic_reason(error)
                if error.get("type") == "extra_forbidden":
                    reason = f"unknown option (allowed: {', '.join(sorted(model.model_fields))})"
                problems.append(ConfigProblem(file, f"{prefix}.{name}.{field}", reason))
    return problems


def load_config(path: Path, catalog: RuleCatalog, *, check_env: bool = True) -> LoadedConfig:
    """Read, parse and validate a config file."""
    file = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(file, "", "file not found")]) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem(file, "", f"cannot read: {exc.strerror}")]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem(file, "", "not UTF-8 text")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem(file, "", f"not valid TOML: {exc}")]) from None
    return parse_config(data, path, catalog, check_env=check_env)
