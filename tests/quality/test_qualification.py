"""Qualification (requirement 2): only qualification tasks until passed at pass_rate; a failure
locks the annotator out until an owner resets them; every attempt is on record."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from tests.conftest import Factory, Person
from tests.quality.conftest import CHOICE3, Desk, team

from quorum.db.models import Assignment, QualificationAttempt, Role, Task

POLICY = {"qualification": {"tasks": 3, "pass_rate": 0.66}, "overlap": 1}


def qualifying_project(make: Factory, people: list[Person]) -> tuple[Any, Person]:
    owner = make.person("owner")
    project = make.project(owner, CHOICE3, POLICY, members={Role.annotator: people})
    make.tasks(project, [{"data": {"q": i}, "gold": {"label": "a"}} for i in range(3)])
    make.tasks(project, [{"data": {"work": i}} for i in range(3)])
    # A fourth gold task, after the qualification's three: hidden gold, not qualification.
    make.tasks(project, [{"data": {"work": 9}, "gold": {"label": "b"}}])
    return project, owner


def answer_qualification(desk: Desk, project_id: int, who: Person, answers: list[str]) -> None:
    for i, answer in enumerate(answers):
        lease = desk.next(project_id, who)
        assert lease is not None and lease["task"]["data"] == {"q": i}  # in order, nothing else
        desk.submit(lease, who, {"label": answer})


def test_pass_opens_the_work_for_everyone_who_qualifies(desk: Desk, make: Factory) -> None:
    first, second = team(make, 2)
    project, owner = qualifying_project(make, [first, second])
    answer_qualification(desk, project.id, first, ["a", "a", "b"])  # 2 of 3 = 0.67 >= 0.66
    answer_qualification(desk, project.id, second, ["a", "a", "a"])  # the same tasks again
    for person in (first, second):
        lease = desk.next(project.id, person)
        assert lease is not None and "work" in lease["task"]["data"]
    quality = desk.get(f"/projects/{project.id}/quality", owner)
    states = {a["user_id"]: a["qualification"] for a in quality["annotators"]}
    assert states[first.user.id] == states[second.user.id] == "passed"
    assert quality["qualification_tasks"] == 3
    rows = desk.session.scalars(select(QualificationAttempt).order_by(QualificationAttempt.id))
    assert [(r.user_id, r.correct, r.total, r.passed) for r in rows] == [
        (first.user.id, 2, 3, True),
        (second.user.id, 3, 3, True),
    ]


def test_failure_locks_out_until_an_owner_resets(
    desk: Desk, make: Factory, session: Session
) -> None:
    (annotator,) = team(make, 1)
    project, owner = qualifying_project(make, [annotator])
    answer_qualification(desk, project.id, annotator, ["a", "b", "b"])  # 1 of 3
    assert desk.next(project.id, annotator) is None  # graded, failed: locked out
    assert desk.next(project.id, annotator) is None
    standing = f"/projects/{project.id}/annotators/{annotator.user.id}"
    desk.post(f"{standing}/reset-qualification", annotator, status=403)  # owners only
    reset = desk.post(f"{standing}/reset-qualification", owner)
    assert reset["qualification"] == "qualifying"
    desk.post(f"{standing}/reset-qualification", owner, status=409)  # nothing graded to reset
    # The qualification answers are cleared (and the tasks' counts with them); the attempt stays.
    session.expire_all()
    held = session.scalars(select(Assignment).where(Assignment.user_id == annotator.user.id))
    assert list(held) == []
    counts = session.execute(
        select(Task.n_submitted, Task.n_leased).where(Task.project_id == project.id)
    ).all()
    assert all(n == (0, 0) for n in counts)
    attempt = session.scalars(select(QualificationAttempt)).one()
    assert (attempt.passed, attempt.reset_by) == (False, owner.user.id)
    answer_qualification(desk, project.id, annotator, ["a", "a", "a"])
    lease = desk.next(project.id, annotator)
    assert lease is not None and "work" in lease["task"]["data"]


def test_skipped_qualification_tasks_count_as_wrong(desk: Desk, make: Factory) -> None:
    (annotator,) = team(make, 1)
    project, owner = qualifying_project(make, [annotator])
    answer_qualification(desk, project.id, annotator, ["a", "a"])
    last = desk.next(project.id, annotator)
    assert last is not None
    desk.skip(last, annotator)
    lease = desk.next(project.id, annotator)  # 2 of 3 right: passed
    assert lease is not None and "work" in lease["task"]["data"]
    quality = desk.get(f"/projects/{project.id}/quality", owner)
    (mine,) = [a for a in quality["annotators"] if a["user_id"] == annotator.user.id]
    assert mine["qualification"] == "passed"
    assert mine["trust"]["checks"] == 2  # qualification answers are checks
    assert mine["trust"]["checks_right"] == 2


def test_the_loop_leaves_qualifiers_to_the_qualification(
    desk: Desk, make: Factory, session: Session
) -> None:
    """Qualification answers are trust evidence, but until the annotator passed, the
    qualification is their gate: the auto-pause does not also catch them on the same answers
    (such a pause outlived the owner's reset, and the reset promises another try)."""
    (annotator,) = team(make, 1)
    project, owner = qualifying_project(make, [annotator])
    for i in range(3):
        lease = desk.next(project.id, annotator)
        assert lease is not None and lease["task"]["data"] == {"q": i}
        desk.submit(lease, annotator, {"label": "c"})  # all wrong
        desk.sweep()  # the loop runs between answers (every 2 s in a server)
    assert desk.next(project.id, annotator) is None  # graded: failed
    desk.sweep()
    standing = f"/projects/{project.id}/annotators/{annotator.user.id}"
    quality = desk.get(f"/projects/{project.id}/quality", owner)
    (mine,) = [a for a in quality["annotators"] if a["user_id"] == annotator.user.id]
    assert (mine["qualification"], mine["paused"]) == ("failed", False)
    assert mine["trust"]["checks"] == 3  # the answers still count as evidence
    assert desk.post(f"{standing}/reset-qualification", owner)["qualification"] == "qualifying"
    answer_qualification(desk, project.id, annotator, ["a", "a", "a"])
    lease = desk.next(project.id, annotator)
    assert lease is not None and "work" in lease["task"]["data"]
