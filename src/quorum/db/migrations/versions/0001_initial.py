"""Initial schema: users, tokens, projects, memberships, tasks, assignments, annotations.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from quorum.db.types import BigId, Json, UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEASED = sa.text("status = 'leased'")
OPEN = sa.text("status = 'open'")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def _fk(
    column: str,
    table: str,
    ondelete: str = "CASCADE",
    *,
    nullable: bool = True,
    primary_key: bool = False,
    unique: bool = False,
) -> sa.Column[int]:
    return sa.Column(
        column,
        BigId,
        sa.ForeignKey(f"{table}.id", ondelete=ondelete),
        nullable=nullable and not primary_key,
        primary_key=primary_key,
        unique=unique,
    )


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(200)),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False),
        sa.Column("pseudonym", sa.String(32), nullable=False, unique=True),
        sa.Column("tier", sa.SmallInteger, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", BigId, primary_key=True),
        _fk("user_id", "users", nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_used_at", UTCDateTime),
        sa.Column("revoked_at", UTCDateTime),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.create_table(
        "idempotency_records",
        _fk("user_id", "users", primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.SmallInteger, nullable=False),
        sa.Column("response", Json, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "projects",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("instructions", sa.Text, nullable=False),
        sa.Column("schema", Json, nullable=False),
        sa.Column("policy", Json, nullable=False),
        _fk("created_by", "users", ondelete="SET NULL"),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "memberships",
        _fk("project_id", "projects", primary_key=True),
        _fk("user_id", "users", primary_key=True),
        sa.Column("role", _enum("role", "owner", "reviewer", "annotator"), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_memberships_user_id", "memberships", ["user_id"])
    op.create_table(
        "tasks",
        sa.Column("id", BigId, primary_key=True),
        _fk("project_id", "projects", nullable=False),
        sa.Column("external_id", sa.String(200)),
        sa.Column("data", Json, nullable=False),
        sa.Column("gold", Json),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("overlap", sa.SmallInteger, nullable=False),
        sa.Column("n_submitted", sa.Integer, nullable=False),
        sa.Column("n_leased", sa.Integer, nullable=False),
        sa.Column("status", _enum("task_status", "open", "complete"), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("project_id", "external_id"),
    )
    op.create_index(
        "ix_tasks_due",
        "tasks",
        ["project_id", sa.text("priority DESC"), sa.text("n_submitted DESC"), "id"],
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )
    op.create_table(
        "assignments",
        sa.Column("id", BigId, primary_key=True),
        _fk("project_id", "projects", nullable=False),
        _fk("task_id", "tasks", nullable=False),
        _fk("user_id", "users", nullable=False),
        sa.Column(
            "status",
            _enum("assignment_status", "leased", "submitted", "skipped", "expired"),
            nullable=False,
        ),
        sa.Column("leased_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime),
        sa.UniqueConstraint("task_id", "user_id"),
    )
    op.create_index("ix_assignments_user_id", "assignments", ["user_id"])
    op.create_index(
        "ix_assignments_live",
        "assignments",
        ["project_id", "expires_at"],
        postgresql_where=LEASED,
        sqlite_where=LEASED,
    )
    op.create_index(
        "ix_assignments_holder",
        "assignments",
        ["project_id", "user_id"],
        postgresql_where=LEASED,
        sqlite_where=LEASED,
    )
    op.create_table(
        "annotations",
        sa.Column("id", BigId, primary_key=True),
        _fk("assignment_id", "assignments", nullable=False, unique=True),
        _fk("project_id", "projects", nullable=False),
        _fk("task_id", "tasks", nullable=False),
        _fk("user_id", "users", nullable=False),
        sa.Column("answers", Json, nullable=False),
        sa.Column("duration_ms", sa.Integer),
        sa.Column("submitted_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_annotations_project_id_id", "annotations", ["project_id", "id"])
    op.create_index("ix_annotations_task_id", "annotations", ["task_id"])
    op.create_index("ix_annotations_user_id", "annotations", ["user_id"])


def downgrade() -> None:
    for table in (
        "annotations",
        "assignments",
        "tasks",
        "memberships",
        "projects",
        "idempotency_records",
        "api_tokens",
        "users",
    ):
        op.drop_table(table)
