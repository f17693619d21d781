"""Connector tests: the real connectors through the real vendor SDKs over HTTP to fake servers."""
