"""Build the connector a configured source needs (the core chooses; connectors never know each other)."""

from __future__ import annotations

from connectors.base import Connector, ConnectorError
from refinebot.config import (
    AzureDevOpsSourceConfig,
    FileSourceConfig,
    JiraSourceConfig,
    LoadedConfig,
)


def connector_for(loaded: LoadedConfig, source_name: str) -> Connector:
    """The connector for ``[sources.source_name]``."""
    source = loaded.config.sources[source_name]
    if isinstance(source, FileSourceConfig):
        from connectors.files import FileConnector

        return FileConnector(source, loaded.resolve_path(source.path))
    if isinstance(source, JiraSourceConfig):
        from connectors.jira import JiraConnector

        return JiraConnector(source, name=source_name)
    if isinstance(source, AzureDevOpsSourceConfig):
        raise ConnectorError(
            f"source {source_name!r}: the {source.kind} connector is not part of this build yet; "
            "export the backlog to a file and use kind = \"file\""
        )
    raise ConnectorError(f"source {source_name!r}: unsupported kind")
