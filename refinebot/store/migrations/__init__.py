"""Alembic migrations of the store (``env.py`` and ``versions/``), shipped inside the package."""
