"""Sync state's big collections one row per item: the ``sync_items`` table and ``sync_state.format``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Rows saved before this revision are format 1 (the whole value in ``sync_state.value``) and are still
read; the next save of each key writes it in format 2. A frozen copy: plain SQLAlchemy types only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("sync_state") as batch:
        batch.add_column(sa.Column("format", sa.Integer(), server_default="1", nullable=False))
    op.create_table(
        "sync_items",
        sa.Column("state_key", sa.String(length=512), nullable=False),
        sa.Column("hash", sa.String(length=32), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("state_key", "hash", name=op.f("pk_sync_items")),
    )


def downgrade() -> None:
    """Undo this revision (split values are lost: the next sync of those keys is a full one)."""
    op.drop_table("sync_items")
    op.execute("DELETE FROM sync_state WHERE format <> 1")
    with op.batch_alter_table("sync_state") as batch:
        batch.drop_column("format")
