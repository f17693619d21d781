"""Find files in ``../shared`` (real data, vendor specs): skip when it is absent, except under CI, where it must be."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


def require_shared(path: Path = SHARED) -> Path:
    """``path`` (inside ../shared); skips the test when it is missing, fails it under ``CI=true``."""
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing; CI must run with shared/ beside the checkout")
        pytest.skip(f"{path} is not present (../shared is absent beside the checkout)")
    return path
