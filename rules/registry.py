"""The one registry of rules: built-in families plus plugins from the ``refinebot.rules`` entry-point group."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from rules.base import Rule, RuleOptions

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "refinebot.rules"
BUILTIN_FAMILIES = (
    "rules.readiness",
    "rules.size",
    "rules.hygiene",
    "rules.dependencies",
    "rules.duplicates",
)


class RegistryError(Exception):
    """A rule that cannot be registered (duplicate code or name, not a rule, broken plugin)."""


class RuleRegistry:
    """Rules by name and by code; rejects duplicates of either."""

    def __init__(self) -> None:
        self._by_name: dict[str, type[Rule]] = {}
        self._by_code: dict[str, type[Rule]] = {}

    def register(self, rule: type[Rule], *, origin: str = "") -> type[Rule]:
        """Add a rule class; raise ``RegistryError`` if its code or name is taken."""
        if not (isinstance(rule, type) and issubclass(rule, Rule) and "code" in rule.__dict__):
            raise RegistryError(f"{origin or repr(rule)}: not a concrete Rule subclass")
        for table, key, what in (
            (self._by_code, rule.code, "code"),
            (self._by_name, rule.name, "name"),
        ):
            existing = table.get(key)
            if existing is not None and existing is not rule:
                raise RegistryError(
                    f"rule {what} {key!r} of {rule.__module__}.{rule.__qualname__} is already used by "
                    f"{existing.__module__}.{existing.__qualname__}"
                )
        self._by_code[rule.code] = rule
        self._by_name[rule.name] = rule
        return rule

    def register_all(self, rules: Iterable[type[Rule]], *, origin: str = "") -> None:
        """Register several rules."""
        for rule in rules:
            self.register(rule, origin=origin)

    def get(self, name_or_code: str) -> type[Rule] | None:
        """A rule by kebab-case name or by code (case-insensitive code)."""
        return self._by_name.get(name_or_code) or self._by_code.get(name_or_code.upper())

    def names(self) -> list[str]:
        """Every registered rule name, in code order."""
        return [rule.name for rule in self]

    def options_model(self, name: str) -> type[RuleOptions] | None:
        """The options model of a rule (by name), for config validation."""
        rule = self._by_name.get(name)
        return rule.Options if rule else None

    def __iter__(self) -> Iterator[type[Rule]]:
        return iter(sorted(self._by_code.values(), key=lambda rule: rule.code))

    def __len__(self) -> int:
        return len(self._by_code)

    def load_family(self, module_name: str) -> None:
        """Register the ``RULES`` a rule-family module exports."""
        module = importlib.import_module(module_name)
        self.register_all(getattr(module, "RULES", ()), origin=module_name)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Register third-party rules; each entry point names a Rule class or an iterable of them."""
        for entry in entry_points(group=group):
            self._load_entry_point(entry)

    def _load_entry_point(self, entry: EntryPoint) -> None:
        origin = f"entry point {entry.name!r} ({entry.value})"
        try:
            loaded = entry.load()
        except Exception as exc:  # a broken plugin must say which one, not crash with a bare trace
            raise RegistryError(f"{origin}: cannot be loaded: {exc}") from exc
        rules = loaded if isinstance(loaded, Iterable) and not isinstance(loaded, type) else [loaded]
        self.register_all(rules, origin=origin)
        logger.debug("loaded rules from %s", origin)


def build_registry(*, plugins: bool = True) -> RuleRegistry:
    """A registry with every built-in rule family and, unless disabled, installed plugins."""
    registry = RuleRegistry()
    for family in BUILTIN_FAMILIES:
        registry.load_family(family)
    if plugins:
        registry.load_entry_points()
    return registry


@lru_cache(maxsize=1)
def default_registry() -> RuleRegistry:
    """The process-wide registry (built once)."""
    return build_registry()
