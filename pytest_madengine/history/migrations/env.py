"""Alembic environment: migrations run on the connection :func:`schema.ensure_schema` passes in
``config.attributes["connection"]``, inside its transaction (one for all revisions)."""
from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=context.config.attributes["version_table"])
with context.begin_transaction():
    context.run_migrations()
