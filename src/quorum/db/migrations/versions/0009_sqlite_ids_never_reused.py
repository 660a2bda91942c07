"""On SQLite, assignment and label ids are never handed out again (AUTOINCREMENT).

Without it SQLite gives a new row the highest id in use plus one, so when the rows with the
highest ids are deleted (a qualification reset removes an annotator's qualification leases and
labels) their ids come back for someone else's lease. A client retrying a request from before
the reset with its ``Idempotency-Key`` would then meet a different lease under the same id, and
where a project hides its gold the ids are the task handles annotators see. PostgreSQL's
sequences never reuse a value, so this changes nothing there.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("assignments", "annotations")


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        # The copy carries every row with its id; SQLite's sequence starts at the highest.
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
