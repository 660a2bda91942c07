"""Fixtures for deliveries: the demo's projects, labelled by its annotators through real leases."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from quorum.db.models import Annotation, Project, User
from quorum.domain import assignments, demo, users

# (annotator index, task id, task data) -> answers
Answer = Callable[[int, int, dict[str, Any]], dict[str, Any]]


@pytest.fixture(autouse=True)
def quick_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo gives its five people passwords; Argon2 at its defaults costs 0.3 s each."""
    monkeypatch.setattr(
        users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@dataclass
class Demo:
    session: Session
    projects: dict[str, Project]  # by name without the demo mark
    annotators: list[User]
    reviewer: User
    owner: User

    def label(self, name: str, answer: Answer) -> list[Annotation]:
        """Every demo annotator labels every task of the project they are given, in turn."""
        project = self.projects[name]
        labelled = []
        for _ in range(100):
            progressed = False
            for k, person in enumerate(self.annotators):
                lease = assignments.lease(self.session, project, person)
                if lease is None:
                    continue
                answers = answer(k, lease.task.id, lease.task.data)
                labelled.append(
                    assignments.submit(self.session, lease.assignment.id, person, answers)
                )
                progressed = True
            if not progressed:
                return labelled
        raise AssertionError(f"{name} never ran out of tasks")


@pytest.fixture
def demo_world(session: Session) -> Demo:
    result = demo.seed(session, labelled=False)  # these tests label the demo themselves
    by_name = {
        name.removeprefix(demo.DEMO_MARK): session.get(Project, pid)
        for pid, name in result.projects
    }
    people = {u.email: u for u in session.scalars(select(User))}
    annotators = [people[f"annotator{i}@example.com"] for i in (1, 2, 3)]
    return Demo(
        session,
        {k: v for k, v in by_name.items() if v is not None},
        annotators,
        people["reviewer@example.com"],
        people["requester@example.com"],
    )
