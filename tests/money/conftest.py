"""Fixtures for payments and budgets: paying projects, labels through the real lease path, and
scratch databases whose commits are real (for the concurrency tests)."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy.orm import Session
from tests.conftest import Factory, Person, scratch_postgres_database

from quorum.db.engine import make_engine
from quorum.db.migrate import upgrade
from quorum.db.models import Annotation, Project, Role
from quorum.domain import assignments, users


@pytest.fixture(autouse=True)
def quick_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """The factory gives everyone a password; Argon2 at its defaults takes 0.3 s a hash, and
    the property test makes people by the dozen. Money, not hashing, is under test here."""
    monkeypatch.setattr(
        users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


CHOICE = {"questions": [{"name": "label", "kind": "choice", "options": ["yes", "no"]}]}


def lease_within_budget(
    session: Session, project: Project, person: Person, now: datetime
) -> int | None:
    """A lease through the session door (which asks the budget first); the assignment id, or
    None when nothing is due or affordable."""
    lease = assignments.lease(session, project, person.user, now=now)
    return None if lease is None else lease.assignment.id


def submit_and_record(
    session: Session, assignment_id: int, person: Person, now: datetime, answer: str = "yes"
) -> Annotation:
    """A submit through the session door, which posts the label's earning."""
    return assignments.submit(session, assignment_id, person.user, {"label": answer}, now=now)


@dataclass
class Paying:
    project: Project
    owner: Person
    annotators: list[Person]
    reviewer: Person


def paying_project(
    make: Factory, *, tasks: int, annotators: int = 2, policy: dict[str, Any] | None = None
) -> Paying:
    owner, reviewer = make.person("owner"), make.person("reviewer")
    people = [make.person("annotator") for _ in range(annotators)]
    project = make.project(
        owner,
        CHOICE,
        {"pay_per_task_cents": 25, **(policy or {})},
        members={Role.annotator: people, Role.reviewer: [reviewer]},
    )
    make.tasks(project, [{"data": {"n": i}} for i in range(tasks)])
    return Paying(project, owner, people, reviewer)


@pytest.fixture
def scratch_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database whose commits are real: SQLite, and PostgreSQL when set."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/money.db"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        return
    with scratch_postgres_database(request.config, "money") as url:
        yield url
