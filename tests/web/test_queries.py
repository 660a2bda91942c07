"""No N+1: each page runs the same number of SQL statements whatever the amount of data."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session
from tests.conftest import Factory, Person
from tests.web.conftest import Visitor

from quorum.db.models import Annotation, Project, ReviewSource, Role
from quorum.domain import assignments, gold, pause, reviews

Visit = Callable[[Person | None], Visitor]


@contextmanager
def counting(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _world(make: Factory, session: Session, size: int) -> tuple[Person, Person, Project]:
    """An owner with ``size`` projects, the last with ``size`` tasks labelled by ``size`` people."""
    owner = make.person("owner")
    team = [make.person("a") for _ in range(size)]
    projects = [
        make.project(owner, policy={"overlap": size}, members={Role.annotator: team})
        for _ in range(size)
    ]
    project = projects[-1]
    make.tasks(project, [{"data": {"q": i}, "gold": {"label": "yes"}} for i in range(size)])
    for person in team:
        for _ in range(size):
            lease = assignments.lease(session, project, person.user)
            assert lease is not None
            note = assignments.submit(session, lease.assignment.id, person.user, {"label": "no"})
            reviews.send_to_review(session, note, source=ReviewSource.sampled)
    # Every annotator graded on gold, one of them paused: the quality panel has all its parts.
    labels = session.scalars(select(Annotation.id).where(Annotation.project_id == project.id))
    gold.grade_gold(session, project, list(labels))
    pause.pause(session, project.id, team[-1].user.id, "by an owner: checking", by=owner.user)
    session.commit()
    return owner, team[0], project


PAGES = [
    "/projects",
    "/projects/{p}/dashboard",
    "/projects/{p}/review",
    "/projects/{p}/annotations",
    "/projects/{p}/members",
]


def test_statements_do_not_grow_with_data(
    visit: Visit, make: Factory, session: Session, engine: Engine
) -> None:
    counts: dict[str, list[int]] = {page: [] for page in PAGES}
    # From 3: with one of them paused, every task still has two labels that count, so the
    # dashboard's lowest-agreement table has rows (and reads their ids and confidence).
    for size in (3, 4):
        owner, _, project = _world(make, session, size)
        visitor = visit(owner)
        for page in PAGES:
            with counting(engine) as statements:
                reply = visitor.get(page.format(p=project.id))
            assert reply.status_code == 200
            counts[page].append(len(statements))
    for page, (small, large) in counts.items():
        assert 0 < small == large, (page, small, large)


def test_the_annotators_pages_do_not_grow_either(
    visit: Visit, make: Factory, session: Session, engine: Engine
) -> None:
    counts = []
    for size in (2, 3):
        _, annotator, project = _world(make, session, size)
        visitor = visit(annotator)
        with counting(engine) as statements:
            assert visitor.get("/projects").status_code == 200
            assert visitor.get(f"/projects/{project.id}/label").status_code == 200
            assert visitor.get("/account").status_code == 200
        counts.append(len(statements))
    assert 0 < counts[0] == counts[1], counts
