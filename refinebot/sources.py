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

        return FileConnector(source, loaded.resolve_path(source.path), tz=loaded.config.tz)
    if isinstance(source, AzureDevOpsSourceConfig):
        from connectors.azure_devops import AzureDevOpsConnector

        if source.cache_dir is not None:  # like file paths, relative to the config file
            source = source.model_copy(update={"cache_dir": loaded.resolve_path(source.cache_dir)})
        return AzureDevOpsConnector(source, name=source_name)
    if isinstance(source, JiraSourceConfig):
        from connectors.jira import JiraConnector

        return JiraConnector(source, name=source_name)
    raise ConnectorError(f"source {source_name!r}: unsupported kind")
