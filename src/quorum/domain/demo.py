"""The demo: one project per question kind, a requester, a reviewer and three annotators, and
one project already labelled by simulated annotators (``demo_crowd``)."""

import json
import secrets
from dataclasses import dataclass
from importlib import resources
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quorum.db.models import Project, Role, User
from quorum.domain import demo_crowd, projects, tasks, users, workforce
from quorum.domain.tasks import Record

DEMO_MARK = "[demo] "


@dataclass(frozen=True)
class DemoPerson:
    email: str
    name: str
    role: str
    tier: int
    is_admin: bool = False
    domains: tuple[tuple[str, int], ...] = ()  # workforce domains and levels (docs/quality.md)


PEOPLE = (
    DemoPerson("requester@example.com", "Rhea Requester", "owner", 3, is_admin=True),
    DemoPerson("reviewer@example.com", "Ravi Reviewer", "reviewer", 3),
    DemoPerson(
        "annotator1@example.com", "Ana Annotator", "annotator", 1, domains=(("medicine", 2),)
    ),
    DemoPerson(
        "annotator2@example.com",
        "Ben Annotator",
        "annotator",
        2,
        domains=(("law", 4), ("medicine", 1)),
    ),  # fmt: skip
    DemoPerson(
        "annotator3@example.com",
        "Chen Annotator",
        "annotator",
        3,
        domains=(("medicine", 5), ("software", 3)),
    ),  # fmt: skip
)


@dataclass(frozen=True)
class DemoSignIn:
    email: str
    role: str
    password: str


@dataclass(frozen=True)
class DemoResult:
    created: bool
    projects: list[tuple[int, str]]
    sign_ins: list[DemoSignIn]
    requester_token: str


def demo_specs() -> list[dict[str, Any]]:
    text = resources.files("quorum.demo").joinpath("projects.json").read_text(encoding="utf-8")
    specs: list[dict[str, Any]] = json.loads(text)
    return specs


def seed(session: Session, *, labelled: bool = True) -> DemoResult:
    """Create the demo once; on later runs reset the demo passwords so they can be printed again.

    Passwords are random for each run: a demo server left running is not open to a known password.
    ``labelled=False`` leaves out the project simulated annotators label (``demo_crowd``), for
    tests that label the demo themselves and need not wait for it.
    """
    people = {p.email: _person(session, p) for p in PEOPLE}
    sign_ins = []
    for person in PEOPLE:
        password = secrets.token_urlsafe(9)
        users.set_password(session, people[person.email], password)
        sign_ins.append(DemoSignIn(person.email, person.role, password))
    existing = _demo_projects(session)
    created = not existing
    if created:
        existing = [_project(session, spec, people) for spec in demo_specs()]
    if created and labelled:
        owner, reviewer = people[PEOPLE[0].email], people[PEOPLE[1].email]
        name = DEMO_MARK + demo_crowd.PROJECT_NAME
        existing.append(demo_crowd.seed(session, name, owner, reviewer))
    _, token = users.create_token(session, people[PEOPLE[0].email], "demo")
    return DemoResult(created, [(p.id, p.name) for p in existing], sign_ins, token)


def _person(session: Session, person: DemoPerson) -> User:
    user = session.scalar(select(User).where(User.email == person.email))
    if user is not None:
        return user
    user = users.create_user(
        session, person.email, name=person.name, is_admin=person.is_admin, tier=person.tier
    )
    if person.domains:
        workforce.set_profile(session, user, domains=dict(person.domains))
    return user


def _demo_projects(session: Session) -> list[Project]:
    query = select(Project).where(Project.name.startswith(DEMO_MARK)).order_by(Project.id)
    return list(session.scalars(query))


def _project(session: Session, spec: dict[str, Any], people: dict[str, User]) -> Project:
    owner = people[PEOPLE[0].email]
    project = projects.create(
        session,
        owner,
        name=DEMO_MARK + spec["name"],
        instructions=spec["instructions"],
        schema=spec["schema"],
        policy=spec["policy"],
    )
    for person in PEOPLE[1:]:
        projects.add_member(session, project, person.email, Role(person.role))
    records = (Record(line, task) for line, task in enumerate(spec["tasks"], start=1))
    tasks.import_tasks(session, project, records)
    return project
