"""Reading submitted annotations back."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from quorum.db.models import Annotation, Project, User
from quorum.domain.pages import Page, parse_cursor


def list_annotations(
    session: Session,
    project: Project,
    *,
    cursor: str | None,
    limit: int,
    task_id: int | None = None,
) -> Page[tuple[Annotation, str]]:
    """Annotations with their annotator's pseudonym, oldest first."""
    query = (
        select(Annotation, User.pseudonym)
        .join(User, User.id == Annotation.user_id)
        .where(Annotation.project_id == project.id)
    )
    if task_id is not None:
        query = query.where(Annotation.task_id == task_id)
    after = parse_cursor(cursor)
    if after is not None:
        query = query.where(Annotation.id > after)
    rows = [(a, p) for a, p in session.execute(query.order_by(Annotation.id).limit(limit + 1))]
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, str(rows[-1][0].id) if more else None)
