"""The rule registry and rule conventions: codes, names, docstrings, strict options, duplicates, plugins."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ConfigDict, Field, ValidationError

from refinebot.models import Finding, Issue
from rules.base import IssueRule, RuleContext, RuleDefinitionError, RuleOptions
from rules.registry import RegistryError, RuleRegistry, build_registry


def test_builtin_rules_follow_the_conventions() -> None:
    registry = build_registry(plugins=False)
    assert registry.names() == [
        "missing-acceptance-criteria",
        "missing-description",
        "missing-estimate",
        "oversized-story",
        "stale-item",
        "blocked-dependency",
        "duplicate-candidate",
    ]
    for rule in registry:
        assert rule.summary() and rule.summary()[0].isupper()
        with pytest.raises(ValidationError):
            rule.Options.model_validate({"no_such_option": 1})


def test_registry_rejects_duplicate_codes_and_names() -> None:
    registry = build_registry(plugins=False)
    oversized = registry.get("oversized-story")
    assert oversized is not None

    class SameCode(IssueRule):
        """Another rule that reuses a taken code."""

        code = oversized.code
        name = "brand-new-name"

    class SameName(IssueRule):
        """Another rule that reuses a taken name."""

        code = "RB999"
        name = "oversized-story"

    with pytest.raises(
        RegistryError, match=r"rule code 'RB201'.*already used by rules\.size\.OversizedStory"
    ):
        registry.register(SameCode)
    with pytest.raises(RegistryError, match="rule name 'oversized-story'"):
        registry.register(SameName)
    registry.register(oversized)  # the same class again is not a duplicate


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"code": "R101", "name": "ok-name", "__doc__": "Doc."}, "must be 'RB' and three digits"),
        ({"code": "RB1000", "name": "ok-name", "__doc__": "Doc."}, "must be 'RB' and three digits"),
        ({"code": "RB123", "name": "Not_Kebab", "__doc__": "Doc."}, "must be kebab-case"),
        ({"code": "RB123", "name": "ok-name", "__doc__": None}, "needs a docstring"),
    ],
)
def test_rule_definition_checks(attrs: dict[str, object], message: str) -> None:
    with pytest.raises(RuleDefinitionError, match=message):
        type("BadRule", (IssueRule,), attrs)


def test_options_must_forbid_unknown_keys() -> None:
    class LooseOptions(RuleOptions):
        model_config = ConfigDict(extra="allow", frozen=True)

    with pytest.raises(RuleDefinitionError, match="forbid unknown keys"):
        type(
            "LooseRule",
            (IssueRule,),
            {"code": "RB900", "name": "loose", "__doc__": "Loose.", "Options": LooseOptions},
        )


class _EveryItemRule(IssueRule):
    """Flags every item (a test plugin)."""

    code = "RB950"
    name = "every-item"

    def check(self, issue: Issue, ctx: RuleContext) -> Iterator[Finding]:
        yield self.finding(ctx, issue, "flagged")


@pytest.fixture
def plugin_dist(tmp_path: Path) -> Iterator[Path]:
    """An installed distribution (dist-info on sys.path) declaring entry points in the refinebot.rules group."""
    package = tmp_path / "rb_test_plugin.py"
    package.write_text(
        textwrap.dedent(
            '''
            """A third-party rule package used by the tests."""
            from rules.base import IssueRule

            class WipLabel(IssueRule):
                """Items labelled wip are not ready."""

                code = "RB960"
                name = "wip-label"

                def check(self, issue, ctx):
                    if "wip" in issue.labels:
                        yield self.finding(ctx, issue, "labelled wip")

            BROKEN = 42
            '''
        )
    )
    info = tmp_path / "rb_test_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rb-test-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[refinebot.rules]\nwip = rb_test_plugin:WipLabel\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield info
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("rb_test_plugin", None)


def test_plugins_load_from_the_entry_point_group(plugin_dist: Path) -> None:
    registry = build_registry(plugins=True)
    rule = registry.get("wip-label")
    assert rule is not None and rule.code == "RB960"
    assert registry.get("RB960") is rule


def test_broken_plugin_is_named(plugin_dist: Path) -> None:
    (plugin_dist / "entry_points.txt").write_text("[refinebot.rules]\nbad = rb_test_plugin:BROKEN\n")
    with pytest.raises(
        RegistryError, match=r"entry point 'bad' \(rb_test_plugin:BROKEN\): not a concrete Rule"
    ):
        build_registry(plugins=True)
    (plugin_dist / "entry_points.txt").write_text("[refinebot.rules]\ngone = no_such_module:Rule\n")
    with pytest.raises(RegistryError, match=r"entry point 'gone' \(no_such_module:Rule\): cannot be loaded"):
        build_registry(plugins=True)


def test_registry_iterates_in_code_order() -> None:
    registry = RuleRegistry()
    registry.register(_EveryItemRule)
    registry.load_family("rules.size")
    assert [rule.code for rule in registry] == ["RB201", "RB950"]
    assert len(registry) == 2


def test_every_option_of_every_builtin_rule_has_a_description() -> None:
    undocumented = [
        f"{rule.name}.{name}"
        for rule in build_registry(plugins=False)
        for name, info in rule.Options.model_fields.items()
        if not (info.description or "").strip()
    ]
    assert undocumented == []
    # The base options every rule inherits are documented once, in RuleOptions.
    assert RuleOptions.model_fields["enabled"].description == "false turns the rule off"


def test_an_option_without_a_description_is_rejected_at_definition() -> None:
    class UndocumentedOptions(RuleOptions):
        limit: int = 3
        blank: int = Field(default=1, description="  ")
        fine: int = Field(default=2, description="a documented option")

    with pytest.raises(
        RuleDefinitionError, match=r"option\(s\) limit, blank need Field\(description=\.\.\.\)"
    ):
        type(
            "UndocumentedRule",
            (IssueRule,),
            {"code": "RB901", "name": "undocumented", "__doc__": "Doc.", "Options": UndocumentedOptions},
        )


def test_plugin_with_an_undocumented_option_is_named(plugin_dist: Path) -> None:
    (plugin_dist.parent / "rb_test_undocumented.py").write_text(
        textwrap.dedent(
            '''
            """A third-party rule whose option has no description."""
            from rules.base import IssueRule, RuleOptions

            class LimitOptions(RuleOptions):
                limit: int = 3

            class Limited(IssueRule):
                """Items over a limit."""

                code = "RB961"
                name = "limited"
                Options = LimitOptions
            '''
        )
    )
    (plugin_dist / "entry_points.txt").write_text(
        "[refinebot.rules]\nlimited = rb_test_undocumented:Limited\n"
    )
    try:
        with pytest.raises(
            RegistryError,
            match=r"entry point 'limited' .*cannot be loaded: .*option\(s\) limit need Field\(description",
        ):
            build_registry(plugins=True)
    finally:
        sys.modules.pop("rb_test_undocumented", None)
