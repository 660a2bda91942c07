"""The quality loop marks each label it processed with its tick, instead of keeping the highest
label id it saw: ids are taken in one order and committed in another, so on PostgreSQL a label
whose submit took its id before, but committed after, one the loop had processed was passed over
for good (never graded, sampled for review or decided).

``annotations.loop_tick`` is the number of the tick that processed a label, NULL while it waits;
``quality_state.ticks`` counts a project's ticks, and ``fitted_tick`` is the last tick whose labels
its last re-aggregation saw (labels of later ticks are new since it). Two partial indexes: a
project's waiting labels (what a tick reads) and its processed ones by tick (is a re-aggregation
due). A submit writes nothing more: a new label is NULL; only a tick writes the column.

Labels up to a project's old watermark count as processed by tick 0; the others wait. The worker
model's ``fit_watermark`` (the last label id the fit saw) is no longer read.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = sa.text("loop_tick IS NULL")
PROCESSED = sa.text("loop_tick IS NOT NULL")


def upgrade() -> None:
    # NOTE: added with a default, then the default dropped: PostgreSQL keeps the 0 for the
    # existing rows without rewriting the table, and new labels are NULL (waiting).
    op.add_column("annotations", sa.Column("loop_tick", sa.BigInteger, server_default="0"))
    with op.batch_alter_table("annotations") as batch:  # SQLite rebuilds the table
        batch.alter_column("loop_tick", server_default=None)
    marks = op.get_bind().execute(
        sa.text(
            "SELECT p.id, COALESCE(s.annotation_watermark, 0) FROM projects p"
            " LEFT JOIN quality_state s ON s.project_id = p.id"
        )
    )
    for project_id, watermark in marks.all():
        op.execute(
            sa.text(
                "UPDATE annotations SET loop_tick = NULL WHERE project_id = :p AND id > :w"
            ).bindparams(p=project_id, w=watermark)
        )
    op.create_index(
        "ix_annotations_waiting",
        "annotations",
        ["project_id", "id"],
        postgresql_where=WAITING,
        sqlite_where=WAITING,
    )
    op.create_index(
        "ix_annotations_project_id_loop_tick",
        "annotations",
        ["project_id", "loop_tick"],
        postgresql_where=PROCESSED,
        sqlite_where=PROCESSED,
    )
    op.add_column(
        "quality_state", sa.Column("ticks", sa.BigInteger, nullable=False, server_default="0")
    )
    op.add_column(
        "quality_state",
        sa.Column("fitted_tick", sa.BigInteger, nullable=False, server_default="0"),
    )
    with op.batch_alter_table("quality_state") as batch:
        batch.drop_column("annotation_watermark")


def downgrade() -> None:
    """Back to a watermark: the label before the first waiting one (else the newest), so that
    no waiting label is passed over. Stored worker models are dropped: they carry no
    ``fit_watermark``, which the older code reads; the next re-aggregation stores one again."""
    with op.batch_alter_table("quality_state") as batch:
        batch.add_column(
            sa.Column("annotation_watermark", sa.BigInteger, nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE quality_state SET annotation_watermark = COALESCE("
        " (SELECT MIN(a.id) - 1 FROM annotations a"
        "  WHERE a.project_id = quality_state.project_id AND a.loop_tick IS NULL),"
        " (SELECT MAX(a.id) FROM annotations a WHERE a.project_id = quality_state.project_id),"
        " 0), model = NULL, fitted_labels = 0, fitted_at = NULL"
    )
    with op.batch_alter_table("quality_state") as batch:
        batch.alter_column("annotation_watermark", server_default=None)
        batch.drop_column("fitted_tick")
        batch.drop_column("ticks")
    op.drop_index("ix_annotations_project_id_loop_tick", table_name="annotations")
    op.drop_index("ix_annotations_waiting", table_name="annotations")
    with op.batch_alter_table("annotations") as batch:
        batch.drop_column("loop_tick")
