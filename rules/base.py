"""The ``Rule`` base classes every rule derives from, with the checks that keep rules uniform.

A rule is a small class: a stable code (``RB`` + 3 digits), a kebab-case name, a docstring whose first line is its
summary, a default severity, a strict options model and one ``check`` method. Issue-level rules see one issue at a
time; backlog-level rules see the whole backlog once (duplicates, dependencies).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from refinebot.models import Finding, Issue, IssueType, Severity

CODE_PATTERN = re.compile(r"^RB\d{3}$")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")


class RuleOptions(BaseModel):
    """Options every rule takes; a rule's own model adds fields and forbids unknown keys."""

    # inf/nan would silently switch a rule off (max_points = inf): reject them like any wrong value.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    enabled: bool = Field(default=True, description="false turns the rule off")
    severity: Severity | None = Field(default=None, description="replaces the rule's severity")


# Rules that look at some item types only each declare their own ``issue_types`` (their defaults
# differ); they share its description.
ISSUE_TYPES_DESCRIPTION = "item types checked"


class RuleDefinitionError(TypeError):
    """A rule class that does not follow the rule conventions."""


class RuleCache(Protocol):
    """Where backlog rules keep state between runs (the duplicate index); the store persists it."""

    def get(self, key: str) -> object | None:
        """The value saved under ``key``, or None."""
        ...

    def put(self, key: str, value: object) -> None:
        """Save ``value`` under ``key``."""
        ...

    def delete(self, key: str) -> None:
        """Forget the value under ``key`` (nothing happens when there is none)."""
        ...


class MemoryRuleCache:
    """A ``RuleCache`` in a dict: state lives as long as the process."""

    def __init__(self) -> None:
        self._values: dict[str, object] = {}

    def get(self, key: str) -> object | None:
        """The value saved under ``key``, or None."""
        return self._values.get(key)

    def put(self, key: str, value: object) -> None:
        """Save ``value`` under ``key``."""
        self._values[key] = value

    def delete(self, key: str) -> None:
        """Forget the value under ``key``."""
        self._values.pop(key, None)


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What a rule may know besides the issues: project, time, and what people decided.

    ``suppressed_pairs`` holds issue-key pairs someone marked "not a duplicate"; ``cache`` keeps
    rule state (such as the duplicate index) between runs. Both default to empty / none.
    """

    project: str
    now: datetime
    suppressed_pairs: frozenset[frozenset[str]] = field(default_factory=frozenset)
    cache: RuleCache | None = None


class Rule:
    """Base of all rules; subclass ``IssueRule`` or ``BacklogRule``, not this."""

    code: ClassVar[str]
    name: ClassVar[str]
    default_severity: ClassVar[Severity] = Severity.WARNING
    Options: ClassVar[type[RuleOptions]] = RuleOptions
    scope: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:
            return  # an intermediate base class, not a concrete rule
        where = f"{cls.__module__}.{cls.__qualname__}"
        if not CODE_PATTERN.match(cls.code):
            raise RuleDefinitionError(f"{where}: code {cls.code!r} must be 'RB' and three digits")
        if not NAME_PATTERN.match(getattr(cls, "name", "")):
            raise RuleDefinitionError(f"{where}: name {getattr(cls, 'name', None)!r} must be kebab-case")
        if not (cls.__doc__ or "").strip():
            raise RuleDefinitionError(f"{where}: needs a docstring whose first line is its summary")
        if not issubclass(cls.Options, RuleOptions):
            raise RuleDefinitionError(f"{where}: Options must subclass RuleOptions")
        if cls.Options.model_config.get("extra") != "forbid":
            raise RuleDefinitionError(f"{where}: Options must forbid unknown keys")
        # 'refinebot rules NAME' prints these descriptions: an option without one is undocumented.
        undocumented = [
            name for name, info in cls.Options.model_fields.items() if not (info.description or "").strip()
        ]
        if undocumented:
            raise RuleDefinitionError(
                f"{where}: option(s) {', '.join(undocumented)} need Field(description=...)"
            )
        if cls.scope not in ("issue", "backlog"):
            raise RuleDefinitionError(f"{where}: derive from IssueRule or BacklogRule")

    def __init__(self, options: RuleOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()
        if not isinstance(self.options, self.Options):
            raise TypeError(f"{self.name} takes {self.Options.__name__}, got {type(options).__name__}")
        self.severity = self.options.severity or self.default_severity

    @classmethod
    def summary(cls) -> str:
        """The first line of the docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0].strip()

    @classmethod
    def explanation(cls) -> str:
        """The docstring after its summary line."""
        lines = (cls.__doc__ or "").strip().splitlines()[1:]
        return "\n".join(line.strip() for line in lines).strip()

    def finding(
        self, ctx: RuleContext, issue: Issue, message: str, *, subject: str = "", **details: Any
    ) -> Finding:
        """A finding of this rule on ``issue``; ``subject`` fingerprints what else it is about (a pair)."""
        # ``details`` is this call's own ``**`` dict: the finding can keep it instead of a copy.
        return Finding.owning(
            ctx.project, issue.key, self.name, self.code, self.severity, message, details, subject
        )


class IssueRule(Rule):
    """A rule that judges one issue on its own."""

    scope: ClassVar[str] = "issue"

    def applies_to(self, issue: Issue) -> bool:
        """Whether this rule looks at ``issue`` (by default: open items of the configured types)."""
        types: Sequence[IssueType] | None = getattr(self.options, "issue_types", None)
        return issue.is_open and (types is None or issue.type in types)

    def check(self, issue: Issue, ctx: RuleContext) -> Iterable[Finding]:
        """Findings for one issue; called only when ``applies_to`` is true."""
        raise NotImplementedError


class BacklogRule(Rule):
    """A rule that needs the whole backlog at once."""

    scope: ClassVar[str] = "backlog"

    def check(self, issues: Sequence[Issue], ctx: RuleContext) -> Iterable[Finding]:
        """Findings for the backlog; ``issues`` holds open and done items alike."""
        raise NotImplementedError
