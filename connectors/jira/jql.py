"""Build the JQL the Jira connector sends, quoting every value that comes from configuration.

A project key or name is always written as a JQL string literal, so spaces, quotes, backslashes or
reserved words ("order", "and") in it cannot change what the query means. Admin-written queries from
the config are used as they are, only wrapped in parentheses when the connector adds a clause of its
own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ORDER BY outside string literals: literals are matched first, so text inside them is skipped.
_ORDER_BY = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|\border\s+by\b", re.IGNORECASE)

# Control characters JQL cannot carry inside a literal; refusing them beats sending something else.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def jql_string(value: str) -> str:
    """``value`` as a double-quoted JQL string literal."""
    if _CONTROL.search(value):
        raise ValueError(f"cannot put control characters into a JQL string: {value!r}")
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


@dataclass(frozen=True, slots=True)
class JqlQuery:
    """A query split into its filter and its ORDER BY, so clauses can be added to the filter."""

    where: str
    order_by: str = ""

    @classmethod
    def parse(cls, jql: str) -> JqlQuery:
        """Split admin-written JQL at its top-level ORDER BY (not one inside a string literal)."""
        for match in _ORDER_BY.finditer(jql):
            if match.group(0).lower().startswith("order"):
                return cls(jql[: match.start()].strip(), jql[match.end() :].strip())
        return cls(jql.strip())

    def and_(self, clause: str) -> JqlQuery:
        """This query restricted further by ``clause``."""
        where = f"({self.where}) AND {clause}" if self.where else clause
        return JqlQuery(where, self.order_by)

    def text(self) -> str:
        """The JQL to send."""
        if self.order_by:
            return f"{self.where} ORDER BY {self.order_by}" if self.where else f"ORDER BY {self.order_by}"
        return self.where


def project_clause(project: str) -> str:
    """``project = "<key or name>"``, safely quoted."""
    return f"project = {jql_string(project)}"


def default_query(project: str) -> JqlQuery:
    """All open items of ``project`` in backlog order."""
    return JqlQuery(f"{project_clause(project)} AND statusCategory != Done", "Rank ASC")


def updated_within(minutes: int) -> str:
    """Items updated in the last ``minutes`` minutes.

    A relative date is used because absolute JQL dates are read in the Jira user's own time zone,
    which the
    connector does not know; "-N m" is measured on the server's clock, so neither zones nor skew
    matter.
    """
    if minutes < 1:
        raise ValueError("minutes must be at least 1")
    return f'updated >= "-{minutes}m"'
