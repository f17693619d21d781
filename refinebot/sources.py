"""Build the connector a configured source needs (the core chooses; connectors never know each other).

This is the one place that knows every connector, and the one place that gives them what they need
from above: where to keep sync state (``SyncStateStore``) and whom to tell about progress.
"""

from __future__ import annotations

from connectors.base import (
    Connector,
    ConnectorError,
    JsonDirSyncStateStore,
    MemorySyncStateStore,
    ProgressCallback,
    SyncStateStore,
    no_progress,
)
from refinebot.config import (
    AzureDevOpsSourceConfig,
    FileSourceConfig,
    JiraSourceConfig,
    LoadedConfig,
)


def default_state_store(loaded: LoadedConfig, source_name: str) -> SyncStateStore:
    """Where a source keeps its sync state when the caller gives no store.

    An Azure DevOps source with ``cache_dir`` keeps it in JSON files there (relative to the config
    file), so a new process syncs incrementally; otherwise it lives as long as the process.
    """
    source = loaded.config.sources[source_name]
    if isinstance(source, AzureDevOpsSourceConfig) and source.cache_dir is not None:
        return JsonDirSyncStateStore(loaded.resolve_path(source.cache_dir) / "refinebot")
    return MemorySyncStateStore()


def connector_for(
    loaded: LoadedConfig,
    source_name: str,
    *,
    state: SyncStateStore | None = None,
    progress: ProgressCallback = no_progress,
) -> Connector:
    """The connector for ``[sources.source_name]``, keeping its state in ``state``."""
    source = loaded.config.sources[source_name]
    if isinstance(source, FileSourceConfig):
        from connectors.files import FileConnector

        return FileConnector(source, loaded.resolve_path(source.path), tz=loaded.config.tz)
    store = state if state is not None else default_state_store(loaded, source_name)
    if isinstance(source, AzureDevOpsSourceConfig):
        from connectors.azure_devops import AzureDevOpsConnector

        return AzureDevOpsConnector(source, name=source_name, state=store, progress=progress)
    if isinstance(source, JiraSourceConfig):
        from connectors.jira import JiraConnector

        return JiraConnector(source, name=source_name, state=store, progress=progress)
    raise ConnectorError(f"source {source_name!r}: unsupported kind")
