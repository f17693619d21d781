"""The store's first schema: every table of ``refinebot.store.schema`` as it was first released.

Revision ID: 0001
Revises:
Create Date: 2026-12-01

Migrations are frozen copies: they use plain SQLAlchemy types, never the package's current schema, so a
later change to ``schema.py`` cannot change what this revision creates.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "bot_comments",
        sa.Column("project", sa.String(length=255), nullable=False),
        sa.Column("issue", sa.String(length=255), nullable=False),
        sa.Column("marker", sa.String(length=255), nullable=False),
        sa.Column("comment_id", sa.String(length=255), nullable=False),
        sa.Column("content_hash", sa.String(length=128), nullable=False),
        sa.Column("edited_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replies_read_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("project", "issue", "marker", name=op.f("pk_bot_comments")),
    )
    op.create_table(
        "cycle_claims",
        sa.Column("project", sa.String(length=255), nullable=False),
        sa.Column("cycle", sa.String(length=255), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("project", "cycle", name=op.f("pk_cycle_claims")),
    )
    op.create_table(
        "digests",
        sa.Column("project", sa.String(length=255), nullable=False),
        sa.Column("cycle", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=255), nullable=False),
        sa.Column("message_ts", sa.String(length=64), nullable=False),
        sa.Column("content_hash", sa.String(length=128), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project", "cycle", "channel", name=op.f("pk_digests")),
    )
    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project", sa.String(length=255), nullable=False),
        sa.Column("issue", sa.String(length=255), nullable=False),
        sa.Column("rule", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=512), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("suppressed", sa.Boolean(), nullable=False),
        sa.Column("verdict", sa.String(length=32), nullable=False),
        sa.Column("suppression_id", sa.Integer(), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_cycle", sa.String(length=255), nullable=False),
        sa.Column("last_cycle", sa.String(length=255), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_findings")),
        sa.UniqueConstraint(
            "project", "issue", "rule", "subject", name=op.f("uq_findings_project_issue_rule_subject")
        ),
    )
    op.create_index(
        op.f("ix_findings_project_resolved_at"), "findings", ["project", "resolved_at"], unique=False
    )

    op.create_table(
        "readiness",
        sa.Column("project", sa.String(length=255), nullable=False),
        sa.Column("cycle", sa.String(length=255), nullable=False),
        sa.Column("ready", sa.Integer(), nullable=False),
        sa.Column("top_n", sa.Integer(), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("open_items", sa.Integer(), nullable=False),
        sa.Column("ready_items", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project", "cycle", name=op.f("pk_readiness")),
    )
    op.create_table(
        "rule_cache",
        sa.Column("project", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project", "key", name=op.f("pk_rule_cache")),
    )
    op.create_table(
        "slack_deliveries",
        sa.Column("delivery_id", sa.String(length=255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_slack_deliveries")),
    )
    op.create_index(
        op.f("ix_slack_deliveries_received_at"), "slack_deliveries", ["received_at"], unique=False
    )

    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("project", sa.String(length=255), nullable=False),
        sa.Column("issue", sa.String(length=255), nullable=False),
        sa.Column("rule", sa.String(length=255), nullable=True),
        sa.Column("other_issue", sa.String(length=255), nullable=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("lifted", sa.DateTime(timezone=True), nullable=True),
        sa.Column("active_pair", sa.String(length=511), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("project", "active_pair", name=op.f("uq_suppressions_project_active_pair")),
    )
    op.create_index(op.f("ix_suppressions_project_issue"), "suppressions", ["project", "issue"], unique=False)

    op.create_table(
        "sync_state",
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("raw_bytes", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sync_state")),
    )


def downgrade() -> None:
    """Undo this revision."""
    op.drop_table("sync_state")
    op.drop_index(op.f("ix_suppressions_project_issue"), table_name="suppressions")

    op.drop_table("suppressions")
    op.drop_index(op.f("ix_slack_deliveries_received_at"), table_name="slack_deliveries")

    op.drop_table("slack_deliveries")
    op.drop_table("rule_cache")
    op.drop_table("readiness")
    op.drop_index(op.f("ix_findings_project_resolved_at"), table_name="findings")

    op.drop_table("findings")
    op.drop_table("digests")
    op.drop_table("cycle_claims")
    op.drop_table("bot_comments")
