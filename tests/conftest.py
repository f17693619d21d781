"""Fixtures shared by the whole suite: where the shared data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (real data and vendor specs); skipped when absent, except under CI where it must exist."""
    if not SHARED.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SHARED} is missing; CI must run with shared/ beside the checkout")
        pytest.skip(f"{SHARED} is not present beside the checkout")
    return SHARED
