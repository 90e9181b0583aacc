"""Sessions gain ``pipeline`` (the CI pipeline/job that ran the session, e.g. its URL) and
``source`` (the perf.csv file a ``history import`` read; empty for a live session); a database
URL's password in a stored command line (kept by earlier versions) is masked."""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pytest_madengine.history.backend import redact_urls

revision = "v3"
down_revision = "v2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("pipeline", sa.Text, nullable=False, server_default=""))
    op.add_column("sessions", sa.Column("source", sa.Text, nullable=False, server_default=""))
    conn = op.get_bind()
    sessions = sa.table("sessions", sa.column("id"), sa.column("pytest_args"))
    for session_id, args in conn.execute(sa.select(sessions.c.id, sessions.c.pytest_args)).all():
        if redact_urls(args) != args:
            conn.execute(sa.update(sessions).where(sessions.c.id == session_id).values(pytest_args=redact_urls(args)))


def downgrade() -> None:
    op.drop_column("sessions", "source")
    op.drop_column("sessions", "pipeline")
