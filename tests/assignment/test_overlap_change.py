"""A lower overlap takes no label back: a task keeps at least the labels it has, stays complete,
and every invariant of ``assignment_audit`` still holds; raising it again asks for the new
overlap, not for more. Found by a long run of the stateful test (``test_stateful.py``)."""

from sqlalchemy import select
from sqlalchemy.orm import Session
from tests.conftest import Factory

from quorum.db.models import Role, Task, TaskStatus
from quorum.domain import assignment_audit, assignments, projects


def test_lowering_the_overlap_below_a_tasks_labels_keeps_them(
    session: Session, make: Factory
) -> None:
    owner = make.person("owner")
    team = [make.person(name) for name in ("a", "b", "c")]
    project = make.project(owner, policy={"overlap": 2}, members={Role.annotator: team})
    make.tasks(project, [{"data": {"n": 0}}, {"data": {"n": 1}}])
    for person in team[:2]:  # both label the first task (closest to completion first)
        lease = assignments.lease(session, project, person.user)
        assert lease is not None
        assignments.submit(session, lease.assignment.id, person.user, {"label": "yes"})
    held = assignments.lease(session, project, team[2].user)
    assert held is not None  # a live lease on the second task

    projects.update_project(session, project, {"policy": {"overlap": 1}})

    def tasks() -> list[tuple[int, int, TaskStatus]]:
        query = select(Task.overlap, Task.n_submitted, Task.status).where(
            Task.project_id == project.id
        )
        return [tuple(row) for row in session.execute(query.order_by(Task.id))]  # type: ignore[misc]

    assert tasks() == [(2, 2, TaskStatus.complete), (1, 0, TaskStatus.open)]
    assert not any(assignment_audit.violations(session, project.id).values())

    projects.update_project(session, project, {"policy": {"overlap": 3}})
    assert tasks() == [(3, 2, TaskStatus.open), (3, 0, TaskStatus.open)]
    assert not any(assignment_audit.violations(session, project.id).values())


def test_labels_kept_by_a_lower_overlap_are_no_extra_slots_later(
    session: Session, make: Factory
) -> None:
    """Only the quality loop's extra slots are kept on top of a new overlap: a task that kept
    its labels when the overlap was lowered gets the new overlap when it is raised again, with
    max_overlap set too; and gold keeps the base overlap whatever the changes. Found by the
    stateful test of the quality loop (tests/quality/test_stateful_quality.py)."""
    owner = make.person("owner")
    team = [make.person(name) for name in ("a", "b")]
    project = make.project(owner, policy={"overlap": 2}, members={Role.annotator: team})
    make.tasks(project, [{"data": {"n": 0}}, {"data": {"n": 1}, "gold": {"label": "yes"}}])
    for person in team:
        for _ in range(2):
            lease = assignments.lease(session, project, person.user)
            assert lease is not None
            assignments.submit(session, lease.assignment.id, person.user, {"label": "yes"})

    def tasks() -> list[tuple[int, int]]:
        query = select(Task.overlap, Task.n_submitted).where(Task.project_id == project.id)
        return [(o, n) for o, n in session.execute(query.order_by(Task.id))]

    projects.update_project(session, project, {"policy": {"overlap": 1}})
    assert tasks() == [(2, 2), (2, 2)]
    projects.update_project(session, project, {"policy": {"overlap": 2, "max_overlap": 4}})
    assert tasks() == [(2, 2), (2, 2)]  # both complete: the loop asked for nothing more
    projects.update_project(session, project, {"policy": {"overlap": 1, "max_overlap": 4}})
    projects.update_project(session, project, {"policy": {"overlap": 2, "max_overlap": 4}})
    assert tasks()[1] == (2, 2)  # gold never gets extra slots (docs/quality.md)
    assert not any(assignment_audit.violations(session, project.id).values())
