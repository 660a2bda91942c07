"""Reviews of annotations (queue, decisions, corrections) and failed sign-ins for rate limiting.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from quorum.db.types import BigId, Json, UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNDECIDED = sa.text("decision IS NULL")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def _fk(
    column: str, table: str, ondelete: str = "CASCADE", *, nullable: bool = True
) -> sa.Column[int]:
    return sa.Column(
        column, BigId, sa.ForeignKey(f"{table}.id", ondelete=ondelete), nullable=nullable
    )


def upgrade() -> None:
    with op.batch_alter_table("annotations") as batch:  # SQLite rebuilds the table
        batch.add_column(
            sa.Column(
                "review_status",
                _enum("review_status", "none", "pending", "accepted", "rejected", "corrected"),
                nullable=False,
                server_default="none",
            )
        )
    op.create_table(
        "reviews",
        sa.Column("id", BigId, primary_key=True),
        _fk("project_id", "projects", nullable=False),
        _fk("annotation_id", "annotations", nullable=False),
        sa.Column("source", _enum("review_source", "manual", "sampled", "flagged"), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        _fk("requested_by", "users", "SET NULL"),
        sa.Column("requested_at", UTCDateTime, nullable=False),
        sa.Column("decision", _enum("review_decision", "accepted", "rejected", "corrected")),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("corrected_answers", Json),
        _fk("reviewer_id", "users", "SET NULL"),
        sa.Column("decided_at", UTCDateTime),
    )
    op.create_index("ix_reviews_annotation_id", "reviews", ["annotation_id"])
    op.create_index(
        "ix_reviews_pending",
        "reviews",
        ["project_id", "id"],
        postgresql_where=UNDECIDED,
        sqlite_where=UNDECIDED,
    )
    op.create_index(
        "uq_reviews_pending_annotation",
        "reviews",
        ["annotation_id"],
        unique=True,
        postgresql_where=UNDECIDED,
        sqlite_where=UNDECIDED,
    )
    op.create_table(
        "sign_in_failures",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("email_hash", sa.String(64), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index(
        "ix_sign_in_failures_email_hash_created_at",
        "sign_in_failures",
        ["email_hash", "created_at"],
    )
    op.create_index("ix_sign_in_failures_ip_created_at", "sign_in_failures", ["ip", "created_at"])


def downgrade() -> None:
    op.drop_table("sign_in_failures")
    op.drop_table("reviews")
    with op.batch_alter_table("annotations") as batch:
        # The CHECK names the column, so a rebuilt SQLite table would keep a dangling one.
        batch.drop_constraint("review_status", type_="check")  # named by convention
        batch.drop_column("review_status")
