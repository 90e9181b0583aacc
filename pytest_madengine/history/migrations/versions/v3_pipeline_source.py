"""Sessions gain ``pipeline`` (the CI pipeline/job that ran the session, e.g. its URL) and
``source`` (the perf.csv file a ``history import`` read; empty for a live session)."""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "v3"
down_revision = "v2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("pipeline", sa.Text, nullable=False, server_default=""))
    op.add_column("sessions", sa.Column("source", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("sessions", "source")
    op.drop_column("sessions", "pipeline")
