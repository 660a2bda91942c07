"""The assignment engine called as a request would call it, for the stateful tests: through a
signed-in user (pages, CLI) or an API token (the annotation API)."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from quorum.db.engine import Database
from quorum.db.models import Project, User
from quorum.domain import assignments

T = TypeVar("T")


@dataclass(frozen=True)
class Member:
    user_id: int
    token: str


class Doors:
    """The engine, called as pages and the CLI do (a signed-in user) or as the API does (a
    token); one committed transaction per call, like a request."""

    def __init__(self, database: Database, project_id: int) -> None:
        self.database, self.project_id = database, project_id

    def call(self, work: Callable[[Session], T]) -> T:
        with self.database.session(write=True) as session:
            result = work(session)
            session.commit()
            return result

    def lease(self, who: Member, now: datetime, by_token: bool) -> tuple[int, int] | None:
        if by_token:
            found = asyncio.run(
                assignments.lease_by_token(self.database, self.project_id, who.token, now=now)
            )
            return None if found is None else (found.assignment_id, found.task_id)

        def work(session: Session) -> tuple[int, int] | None:
            project, user = session.get(Project, self.project_id), session.get(User, who.user_id)
            assert project is not None and user is not None
            lease = assignments.lease(session, project, user, now=now)
            return None if lease is None else (lease.assignment.id, lease.task.id)

        return self.call(work)

    def submit(
        self,
        who: Member,
        assignment_id: int,
        answer: str,
        key: str | None,
        now: datetime,
        by_token: bool,
    ) -> tuple[int, dict[str, Any]]:
        answers = {"label": answer}
        if by_token:
            submission = assignments.Submission(assignment_id, answers, 1000, key)
            view = asyncio.run(
                assignments.submit_by_token(self.database, who.token, submission, now=now)
            )
            return view.id, view.answers

        def work(session: Session) -> tuple[int, dict[str, Any]]:
            user = session.get(User, who.user_id)
            assert user is not None
            label = assignments.submit(
                session, assignment_id, user, answers, duration_ms=1000, key=key, now=now
            )
            return label.id, label.answers

        return self.call(work)

    def skip(self, who: Member, assignment_id: int, now: datetime, by_token: bool) -> str:
        if by_token:
            view = asyncio.run(
                assignments.skip_by_token(self.database, assignment_id, who.token, now=now)
            )
            return view.status

        def work(session: Session) -> str:
            user = session.get(User, who.user_id)
            assert user is not None
            return assignments.skip(session, assignment_id, user, now=now).status.value

        return self.call(work)
