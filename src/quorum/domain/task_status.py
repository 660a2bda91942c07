"""One function decides a task's status."""

from collections.abc import Collection

from sqlalchemy import case, update
from sqlalchemy.orm import Session

from quorum.db.models import Task, TaskStatus


def recompute_task_status(
    session: Session, *, task_ids: Collection[int] | None = None, project_id: int | None = None
) -> None:
    """The only writer of ``tasks.status``: called after lease, submit, skip, expiry, policy change.

    A task is complete once it has as many submitted labels as its overlap asks for; the quality
    loop raises a task's overlap when its answer is still unsure.
    """
    if task_ids is None and project_id is None:
        raise ValueError("name the tasks or the project whose statuses to recompute")
    status = case((Task.n_submitted >= Task.overlap, TaskStatus.complete), else_=TaskStatus.open)
    statement = update(Task).values(status=status).execution_options(synchronize_session=False)
    if task_ids is not None:
        statement = statement.where(Task.id.in_(task_ids))
    if project_id is not None:
        statement = statement.where(Task.project_id == project_id)
    session.execute(statement)
