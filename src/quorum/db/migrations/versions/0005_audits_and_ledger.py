"""Vendor audits (vendors, their labels, audit samples) and the append-only payments ledger.

The ledger's rows are never updated or deleted: triggers refuse it on both databases, so a
mistake is corrected by a new entry, never by rewriting history.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from quorum.db.types import BigId, Json, UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACCOUNTS = ("budget", "pending", "payable", "paid")
KINDS = (
    "earning",
    "hold",
    "release",
    "reversal",
    "reinstatement",
    "bonus",
    "adjustment",
    "payout",
)
EARNING = sa.text("kind = 'earning'")
APPEND_ONLY = "ledger entries are append-only: record a correcting entry instead"


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def _fk(
    column: str, table: str, ondelete: str | None = "CASCADE", *, nullable: bool = True
) -> sa.Column[int]:
    return sa.Column(
        column, BigId, sa.ForeignKey(f"{table}.id", ondelete=ondelete), nullable=nullable
    )


def upgrade() -> None:
    op.create_table(
        "vendors",
        sa.Column("id", BigId, primary_key=True),
        _fk("project_id", "projects", nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("price_cents_per_label", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("project_id", "name"),
    )
    op.create_table(
        "vendor_labels",
        sa.Column("id", BigId, primary_key=True),
        _fk("vendor_id", "vendors", nullable=False),
        _fk("task_id", "tasks", nullable=False),
        sa.Column("answers", Json, nullable=False),
        sa.Column("delivered_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("vendor_id", "task_id"),
    )
    op.create_index("ix_vendor_labels_task_id", "vendor_labels", ["task_id"])
    op.create_table(
        "audit_samples",
        sa.Column("id", BigId, primary_key=True),
        _fk("vendor_id", "vendors", nullable=False),
        _fk("task_id", "tasks", nullable=False),
        sa.Column("question", sa.String(64), nullable=False),
        sa.Column("stratum", sa.String(500), nullable=False),
        sa.Column("drawn_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("vendor_id", "task_id"),
    )
    op.create_index("ix_audit_samples_task_id", "audit_samples", ["task_id"])
    _ledger()


def _ledger() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("kind", _enum("ledger_kind", *KINDS), nullable=False),
        _fk("user_id", "users", None, nullable=False),
        _fk("project_id", "projects", None),
        _fk("annotation_id", "annotations", None),
        sa.Column("source", _enum("ledger_account_source", *ACCOUNTS), nullable=False),
        sa.Column("target", _enum("ledger_account_target", *ACCOUNTS), nullable=False),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("period", sa.String(32)),
        _fk("created_by", "users", "SET NULL"),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.CheckConstraint("amount_cents > 0", name="positive_amount"),
        sa.CheckConstraint("source <> target", name="moves_money"),
    )
    op.create_index("ix_ledger_entries_user_id", "ledger_entries", ["user_id"])
    op.create_index("ix_ledger_entries_annotation_id", "ledger_entries", ["annotation_id"])
    op.create_index("ix_ledger_entries_period", "ledger_entries", ["period"])
    op.create_index("ix_ledger_entries_project_id_kind", "ledger_entries", ["project_id", "kind"])
    op.create_index(
        "uq_ledger_entries_earning",
        "ledger_entries",
        ["annotation_id"],
        unique=True,
        postgresql_where=EARNING,
        sqlite_where=EARNING,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE "
            "ON ledger_entries FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only()"
        )
        return
    for event in ("update", "delete"):
        op.execute(
            f"CREATE TRIGGER ledger_entries_no_{event} BEFORE {event.upper()} ON ledger_entries "
            f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
        )


def downgrade() -> None:
    op.drop_table("ledger_entries")  # its triggers go with it
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ledger_entries_append_only()")
    op.drop_table("audit_samples")
    op.drop_table("vendor_labels")
    op.drop_table("vendors")
