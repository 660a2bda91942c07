"""At most one leased assignment per annotator and project, enforced by a unique index.

The lease statement on PostgreSQL takes no lock per annotator: two concurrent leases of one
annotator both choose a task, and this index makes the second insert fail (the flow then
returns the first lease). It replaces the plain index on the same columns.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEASED = sa.text("status = 'leased'")


def upgrade() -> None:
    # Older versions could leave an annotator's unreclaimed expired lease beside a newer one:
    # expire all but the newest, then recount the leases of every task.
    op.execute(
        "UPDATE assignments SET status = 'expired', finished_at = expires_at "
        "WHERE status = 'leased' AND id NOT IN "
        "(SELECT max(id) FROM assignments WHERE status = 'leased' GROUP BY project_id, user_id)"
    )
    op.execute(
        "UPDATE tasks SET n_leased = (SELECT count(*) FROM assignments "
        "WHERE assignments.task_id = tasks.id AND assignments.status = 'leased') "
        "WHERE n_leased > 0"
    )
    op.drop_index("ix_assignments_holder", table_name="assignments")
    op.create_index(
        "uq_assignments_leased_holder",
        "assignments",
        ["project_id", "user_id"],
        unique=True,
        postgresql_where=LEASED,
        sqlite_where=LEASED,
    )


def downgrade() -> None:
    op.drop_index("uq_assignments_leased_holder", table_name="assignments")
    op.create_index(
        "ix_assignments_holder",
        "assignments",
        ["project_id", "user_id"],
        postgresql_where=LEASED,
        sqlite_where=LEASED,
    )
