"""The first layout: sessions with the pytest arguments as one string, results as JSON rows.

Kept as the root of the chain so files of that layout (PRAGMA user_version 1) are migrated.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "v1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("started", sa.Float, nullable=False),
        sa.Column("ended", sa.Float),
        sa.Column("host", sa.Text, nullable=False, server_default=""),
        sa.Column("target", sa.Text, nullable=False, server_default=""),
        sa.Column("args", sa.Text, nullable=False, server_default=""),
    )
    op.create_table(
        "results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.Text, sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("performance", sa.Text, nullable=False, server_default=""),
        sa.Column("metric", sa.Text, nullable=False, server_default=""),
        sa.Column("row_json", sa.Text, nullable=False, server_default="{}"),
    )


def downgrade() -> None:
    op.drop_table("results")
    op.drop_table("sessions")
