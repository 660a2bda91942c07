"""The quality loop and the workforce: annotator domains and pay rates, project domains, each
annotator's standing in a project (qualification, pause), graded outcomes for trust, the loop's
progress and worker model per project, text fingerprints for copy-paste detection, and a task's
reserved tier (escalation).

Two indexes serve the lease: gold tasks that are due (hidden gold is picked from them without
walking the real tasks), and a project's gold tasks in id order (its qualification set).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from quorum.db.types import BigId, UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GOLD = sa.text("gold IS NOT NULL")
GOLD_DUE = sa.text("status = 'open' AND gold IS NOT NULL")


def _fk(
    column: str, table: str, ondelete: str | None = "CASCADE", *, nullable: bool = True
) -> sa.Column[int]:
    return sa.Column(
        column, BigId, sa.ForeignKey(f"{table}.id", ondelete=ondelete), nullable=nullable
    )


def _key(column: str, table: str) -> sa.Column[int]:
    return sa.Column(
        column, BigId, sa.ForeignKey(f"{table}.id", ondelete="CASCADE"), primary_key=True
    )


def upgrade() -> None:
    op.add_column("users", sa.Column("pay_rate_cents", sa.Integer))
    op.add_column(
        "tasks", sa.Column("min_tier", sa.SmallInteger, nullable=False, server_default="1")
    )
    op.create_index(
        "ix_tasks_gold_due",
        "tasks",
        ["project_id", "priority", "n_submitted", "id"],
        postgresql_where=GOLD_DUE,
        sqlite_where=GOLD_DUE,
    )
    op.create_index(
        "ix_tasks_gold", "tasks", ["project_id", "id"], postgresql_where=GOLD, sqlite_where=GOLD
    )
    _workforce()
    _outcomes()


def _workforce() -> None:
    op.create_table(
        "annotator_domains",
        _key("user_id", "users"),
        sa.Column("domain", sa.String(64), primary_key=True),
        sa.Column("level", sa.SmallInteger, nullable=False),
    )
    op.create_table(
        "project_domains",
        _key("project_id", "projects"),
        sa.Column("domain", sa.String(64), primary_key=True),
        sa.Column("min_level", sa.SmallInteger, nullable=False),
    )
    op.create_table(
        "project_workers",
        _key("project_id", "projects"),
        _key("user_id", "users"),
        sa.Column("qualification", sa.String(16)),
        sa.Column("qualified_at", UTCDateTime),
        sa.Column("paused_at", UTCDateTime),
        sa.Column("pause_reason", sa.String(500), nullable=False),
        _fk("paused_by", "users", "SET NULL"),
        sa.Column("unpaused_at", UTCDateTime),
        _fk("unpaused_by", "users", "SET NULL"),
        sa.Column("evidence_since", UTCDateTime),
    )
    op.create_index("ix_project_workers_user_id", "project_workers", ["user_id"])
    op.create_table(
        "qualification_attempts",
        sa.Column("id", BigId, primary_key=True),
        _fk("project_id", "projects", nullable=False),
        _fk("user_id", "users", nullable=False),
        sa.Column("correct", sa.Integer, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("decided_at", UTCDateTime, nullable=False),
        sa.Column("reset_at", UTCDateTime),
        _fk("reset_by", "users", "SET NULL"),
    )
    op.create_index(
        "ix_qualification_attempts_project_id_user_id",
        "qualification_attempts",
        ["project_id", "user_id"],
    )


def _outcomes() -> None:
    op.create_table(
        "quality_outcomes",
        sa.Column("id", BigId, primary_key=True),
        _fk("project_id", "projects", nullable=False),
        _fk("user_id", "users", nullable=False),
        _fk("annotation_id", "annotations", nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("correct", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("annotation_id", "source"),
    )
    op.create_index(
        "ix_quality_outcomes_project_id_user_id", "quality_outcomes", ["project_id", "user_id"]
    )
    op.create_index("ix_quality_outcomes_user_id", "quality_outcomes", ["user_id"])
    op.create_table(
        "quality_state",
        _key("project_id", "projects"),
        sa.Column("annotation_watermark", sa.BigInteger, nullable=False),
        sa.Column("fitted_labels", sa.Integer, nullable=False),
        sa.Column("fitted_at", UTCDateTime),
        sa.Column("model", sa.LargeBinary),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "text_fingerprints",
        sa.Column("id", BigId, primary_key=True),
        _fk("project_id", "projects", nullable=False),
        _fk("annotation_id", "annotations", nullable=False),
        sa.Column("band", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_text_fingerprints_project_id_band", "text_fingerprints", ["project_id", "band"]
    )
    op.create_index("ix_text_fingerprints_annotation_id", "text_fingerprints", ["annotation_id"])


def downgrade() -> None:
    op.drop_table("text_fingerprints")
    op.drop_table("quality_state")
    op.drop_table("quality_outcomes")
    op.drop_table("qualification_attempts")
    op.drop_table("project_workers")
    op.drop_table("project_domains")
    op.drop_table("annotator_domains")
    op.drop_index("ix_tasks_gold", table_name="tasks")
    op.drop_index("ix_tasks_gold_due", table_name="tasks")
    # NOTE: plain ALTER TABLE (SQLite >= 3.35 has DROP COLUMN): a batch copy of the table
    # would lose ix_tasks_due, whose DESC expressions SQLite cannot reflect.
    op.execute("ALTER TABLE tasks DROP COLUMN min_tier")
    op.execute("ALTER TABLE users DROP COLUMN pay_rate_cents")
