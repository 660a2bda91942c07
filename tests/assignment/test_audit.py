"""The audit finds copies that no longer match what they copy (they have no foreign keys of
their own since migration 0007), and a correct project has none."""

from sqlalchemy import update
from sqlalchemy.orm import Session
from tests.conftest import Factory

from quorum.db.models import Annotation, Assignment, Role
from quorum.domain import assignment_audit, assignments


def test_copies_that_differ_are_counted(session: Session, make: Factory) -> None:
    owner, annotator = make.person("owner"), make.person("annotator")
    project = make.project(owner, members={Role.annotator: [annotator]})
    other = make.project(owner, members={Role.annotator: [annotator]})
    make.tasks(project, [{"data": {"n": i}} for i in range(2)])
    lease = assignments.lease(session, project, annotator.user)
    assert lease is not None
    label = assignments.submit(session, lease.assignment.id, annotator.user, {"label": "yes"})
    assert assignment_audit.violations(session, project.id)["copies_differ"] == 0

    session.execute(
        update(Annotation).where(Annotation.id == label.id).values(user_id=owner.user.id)
    )
    assert assignment_audit.violations(session, project.id)["copies_differ"] == 1

    second = assignments.lease(session, project, annotator.user)
    assert second is not None
    session.execute(
        update(Assignment).where(Assignment.id == second.assignment.id).values(project_id=other.id)
    )
    assert assignment_audit.violations(session, project.id)["copies_differ"] == 2
    assert assignment_audit.violations(session, other.id)["copies_differ"] == 1
