"""The store suite's engines for the report tests: each store-backed test runs on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.store.conftest import database_url, engine_name, postgres

__all__ = ["database_url", "engine_name", "postgres"]
