"""The chart_uploads table: which readiness chart went into which digest's thread.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

A frozen copy, like 0001: plain SQLAlchemy types, never the package's current schema.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "chart_uploads",
        sa.Column("project", sa.String(length=255), nullable=False),
        sa.Column("cycle", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=255), nullable=False),
        sa.Column("message_ts", sa.String(length=64), nullable=False),
        sa.Column("file_id", sa.String(length=255), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project", "cycle", "channel", name=op.f("pk_chart_uploads")),
    )


def downgrade() -> None:
    """Undo this revision."""
    op.drop_table("chart_uploads")
