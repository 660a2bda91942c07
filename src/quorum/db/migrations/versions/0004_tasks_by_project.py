"""Index a project's tasks by id, so exports and task lists walk them in order without a sort.

Without it, a batch of ``WHERE project_id = ? AND id > ? ORDER BY id LIMIT n`` reads every task
of the project through another index and sorts them, for each batch: quadratic in project size.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tasks_project_id_id", "tasks", ["project_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_project_id_id", table_name="tasks")
