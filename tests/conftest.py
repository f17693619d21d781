"""Fixtures shared by the whole suite: where the shared data lives."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.shared_data import SHARED, require_shared


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (real data and vendor specs)."""
    return require_shared(SHARED)
