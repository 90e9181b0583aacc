"""Sessions gain environment columns (args → a JSON list); results get one column per perf.csv field."""
from __future__ import annotations

import json
import math
import shlex

import sqlalchemy as sa
from alembic import op

revision = "v2"
down_revision = "v1"
branch_labels = None
depends_on = None

PERF = (
    "model", "n_gpus", "nnodes", "gpus_per_node", "training_precision", "pipeline", "args", "tags",
    "docker_file", "base_docker", "docker_sha", "docker_image", "git_commit", "machine_name",
    "deployment_type", "launcher", "gpu_architecture", "performance", "metric", "relative_change",
    "status", "build_duration", "test_duration", "dataname", "data_provider_type", "data_size",
    "data_download_duration", "build_number", "additional_docker_run_options",
)
INDEXES = (("results_match", "results", ("model", "gpu_architecture", "n_gpus", "nnodes", "session_id")),
           ("results_session", "results", ("session_id",)), ("sessions_started", "sessions", ("started",)))


def _text(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text, nullable=False, server_default="")


def upgrade() -> None:
    conn = op.get_bind()
    for name in ("git_commit", "gpu_vendor", "gpu_architecture"):
        op.add_column("sessions", _text(name))
    op.add_column("sessions", sa.Column("gpu_count", sa.Integer, nullable=False, server_default="0"))
    op.add_column("sessions", sa.Column("nodes", sa.Integer, nullable=False, server_default="1"))
    op.add_column("sessions", sa.Column("pytest_args", sa.Text, nullable=False, server_default="[]"))
    sessions = sa.table("sessions", sa.column("id"), sa.column("args"), sa.column("pytest_args"))
    for session_id, args in conn.execute(sa.select(sessions.c.id, sessions.c.args)).all():
        conn.execute(sa.update(sessions).where(sessions.c.id == session_id)
                     .values(pytest_args=json.dumps(_split(args or ""))))
    op.drop_column("sessions", "args")  # native on PostgreSQL and SQLite ≥ 3.35 (no table copy)

    new = op.create_table(
        "results_v2",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.Text, sa.ForeignKey("sessions.id"), nullable=False),
        *(_text(name) for name in PERF),
        sa.Column("value", sa.Float),
        _text("phase"), _text("reason"),
        sa.Column("repeat", sa.Integer, nullable=False, server_default="0"),
        sa.Column("row_index", sa.Integer, nullable=False, server_default="0"),
        _text("image_digest"),
        sa.Column("recorded", sa.Float, nullable=False, server_default="0"),
    )
    old = sa.table("results", *(sa.column(name) for name in
                                 ("id", "session_id", "model", "status", "performance", "metric", "row_json")))
    started = sa.table("sessions", sa.column("id"), sa.column("started"))
    query = (sa.select(old, started.c.started).select_from(old.outerjoin(started, started.c.id == old.c.session_id))
             .order_by(old.c.id))
    rows = [_row(record._mapping) for record in conn.execute(query)]
    if rows:
        conn.execute(sa.insert(new), rows)
    op.drop_table("results")
    op.rename_table("results_v2", "results")
    if conn.dialect.name == "postgresql":  # the serial's sequence follows the copied ids
        conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('results', 'id'), "
                             "coalesce(max(id), 0) + 1, false) FROM results")
    for name, table, columns in INDEXES:
        op.create_index(name, table, list(columns))


def downgrade() -> None:
    raise NotImplementedError("the history is not downgraded: keep a copy of the file before upgrading")


def _row(record: sa.RowMapping) -> dict[str, object]:
    fields = _json_object(record["row_json"])
    fields.update(model=record["model"], status=record["status"], performance=record["performance"] or "",
                  metric=record["metric"] or "")
    values: dict[str, object] = {name: "" if fields.get(name) is None else str(fields[name]) for name in PERF}
    values.update(id=record["id"], session_id=record["session_id"], value=_number(record["performance"] or ""),
                  row_index=0, recorded=record["started"] or 0.0)
    return values


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _split(args: str) -> list[str]:
    try:
        return shlex.split(args)
    except ValueError:
        return args.split()


def _json_object(text: str | None) -> dict[str, object]:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
