"""Drop the foreign keys that only repeat another: a lease's project, a label's project, task
and annotator.

An assignment's project is its task's; a label's project, task and annotator are its
assignment's, and those keep their foreign keys. Checking the copies cost a tenth of
PostgreSQL's time in the annotation loop: every lease and every label locked the project's row
(``FOR KEY SHARE``) from every concurrent transaction (measured with the annotation benchmark:
0.82-0.87 → 0.76-0.83 ms of database CPU per label). ``domain.assignment_audit`` checks that the
copies match. Deleting a project still deletes its assignments and labels, through its tasks.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DROPPED = {
    "assignments": [("project_id", "projects")],
    "annotations": [("project_id", "projects"), ("task_id", "tasks"), ("user_id", "users")],
}


def upgrade() -> None:
    for table, keys in DROPPED.items():
        with op.batch_alter_table(table) as batch:  # SQLite rebuilds the table
            for column, target in keys:
                batch.drop_constraint(f"fk_{table}_{column}_{target}", type_="foreignkey")


def downgrade() -> None:
    for table, keys in DROPPED.items():
        with op.batch_alter_table(table) as batch:
            for column, target in keys:
                batch.create_foreign_key(
                    f"fk_{table}_{column}_{target}", target, [column], ["id"], ondelete="CASCADE"
                )
