"""Hidden gold (requirement 3): mixed in at gold_rate, indistinguishable in every API response an
annotator sees, never shown to more annotators than a real task's overlap; feedback on request."""

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from tests.conftest import Factory, Person
from tests.quality.conftest import CHOICE3, Desk, team, truth_of

from quorum.db.models import Assignment, Role, Task


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and types, never the values themselves."""
    if isinstance(value, dict):
        return {key: shape(v) for key, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    return type(value).__name__


def gold_project(make: Factory, people: list[Person], policy: dict[str, Any]) -> Any:
    owner = make.person("owner")
    project = make.project(owner, CHOICE3, policy, members={Role.annotator: people})
    # Gold imported apart from the work, as a block: its ids alone would give it away.
    make.tasks(project, [{"data": {"text": f"t{i}", "truth": "a"}} for i in range(4)])
    gold = {"label": "b"}
    make.tasks(project, [{"data": {"text": f"g{i}", "truth": "b"}, "gold": gold} for i in range(4)])
    return project


def task_of(session: Session, assignment_id: int) -> Task:
    task = session.scalar(
        select(Task)
        .join(Assignment, Assignment.task_id == Task.id)
        .where(Assignment.id == assignment_id)
    )
    assert task is not None
    return task


def test_gold_cannot_be_told_apart_in_any_response(
    desk: Desk, make: Factory, session: Session
) -> None:
    (annotator,) = team(make, 1)
    project = gold_project(make, [annotator], {"gold_rate": 1.0, "lease_seconds": 600})
    replies: dict[bool, list[Any]] = {True: [], False: []}
    handles = []
    while (lease := desk.next(project.id, annotator)) is not None:
        task = task_of(session, lease["assignment_id"])
        is_gold = task.gold is not None
        # The task id shown is the annotator's handle (the assignment), not the task's id
        # (the two may be the same number by chance: they come from two sequences).
        assert lease["task"]["id"] == lease["assignment_id"]
        assert set(lease["task"]["data"]) == {"text", "truth"}  # the task's data, nothing added
        handles.append(lease["task"]["id"])
        if len(handles) % 3 == 0:  # skip some of each kind, submit the others
            reply = desk.skip(lease, annotator)
            assert reply["task_id"] == lease["assignment_id"]
            lease_span = datetime.fromisoformat(reply["expires_at"]) - datetime.fromisoformat(
                reply["leased_at"]
            )
            assert lease_span.total_seconds() == 600
        else:
            reply = desk.submit(lease, annotator, {"label": "a"})
            assert reply["task_id"] == lease["assignment_id"]
        replies[is_gold] += [shape(lease), shape(reply)]
    assert len(replies[True]) == len(replies[False]) == 8  # both kinds were seen
    assert {repr(r) for r in replies[True]} == {repr(r) for r in replies[False]}
    # Gold came mixed in first (gold_rate 1), newest first; the handles still count up.
    assert handles == sorted(handles)
    # What else an annotator may read: their statement, profile, trust; none names a task.
    for path in ("/me/statement", "/me/profile", "/me/trust", "/me/feedback"):
        assert "gold" not in str(desk.get(path, annotator)).replace("gold_feedback", "")
    desk.get(f"/projects/{project.id}/tasks", annotator, status=403)
    desk.get(f"/projects/{project.id}/annotations", annotator, status=403)
    desk.get(f"/projects/{project.id}/quality", annotator, status=403)


def test_without_hidden_gold_task_ids_are_the_tasks(desk: Desk, make: Factory) -> None:
    (annotator,) = team(make, 1)
    project = gold_project(make, [annotator], {"gold_rate": 0.0})
    lease = desk.next(project.id, annotator)
    assert lease is not None
    assert lease["task"]["id"] == task_of(desk.session, lease["assignment_id"]).id
    assert desk.submit(lease, annotator, {"label": "a"})["task_id"] == lease["task"]["id"]


def test_gold_only_comes_mixed_into_work(desk: Desk, make: Factory) -> None:
    """With no real work due, no gold either: the task after a 204 is never a check."""
    (annotator,) = team(make, 1)
    project = gold_project(make, [annotator], {"gold_rate": 1.0})
    kinds = []
    while (lease := desk.next(project.id, annotator)) is not None:
        kinds.append(task_of(desk.session, lease["assignment_id"]).gold is not None)
        desk.submit(lease, annotator, {"label": "a"})
    assert kinds == [True] * 4 + [False] * 4


def test_gold_rate_mixes_in_its_share(desk: Desk, make: Factory) -> None:
    (annotator,) = team(make, 1)
    owner = make.person("owner")
    members = {Role.annotator: [annotator]}
    project = make.project(owner, CHOICE3, {"gold_rate": 0.3}, members=members)
    make.tasks(project, [{"data": {"truth": "a"}} for _ in range(60)])
    make.tasks(project, [{"data": {"truth": "a"}, "gold": {"label": "a"}} for _ in range(60)])
    kinds = []
    for _ in range(60):
        lease = desk.next(project.id, annotator)
        assert lease is not None
        kinds.append(task_of(desk.session, lease["assignment_id"]).gold is not None)
        desk.submit(lease, annotator, {"label": "a"})
    assert 8 <= sum(kinds) <= 30  # 18 expected; a seeded coin, so this is one fixed draw
    assert 0 < sum(kinds[:30]) and 0 < sum(kinds[30:])  # spread, not bunched


def test_gold_never_gets_more_labels_than_a_real_task(
    desk: Desk, make: Factory, session: Session
) -> None:
    people = team(make, 5)
    project = gold_project(make, people, {"gold_rate": 1.0, "overlap": 2, "max_overlap": 4})
    for person in people:
        desk.label(project.id, person, truth_of)
    desk.sweep()
    tasks = session.scalars(select(Task).where(Task.project_id == project.id)).all()
    real = min(t.n_submitted for t in tasks if t.gold is None)
    assert real >= 2
    assert all(t.n_submitted <= 2 <= real for t in tasks if t.gold is not None)
    assert all(t.overlap == 2 for t in tasks if t.gold is not None)
    # No annotator held any task twice.
    held = session.execute(
        select(Assignment.user_id, Assignment.task_id).where(Assignment.project_id == project.id)
    ).all()
    assert len(held) == len(set(held))


def test_feedback_after_a_gold_submission_when_enabled(desk: Desk, make: Factory) -> None:
    right, wrong = team(make, 2)
    owner = make.person("owner")
    quiet = make.project(owner, CHOICE3, {"gold_rate": 1.0}, members={Role.annotator: [right]})
    project = make.project(
        owner, CHOICE3, {"gold_rate": 1.0, "overlap": 2, "gold_feedback": True},
        members={Role.annotator: [right, wrong]},
    )  # fmt: skip
    for each in (quiet, project):
        gold = {"data": {"truth": "b"}, "gold": {"label": "b"}}
        make.tasks(each, [{"data": {"truth": "a"}}, gold])
    first = desk.label(project.id, right, truth_of)
    desk.label(project.id, wrong, lambda data: {"label": "c"})
    desk.label(quiet.id, right, truth_of)
    assert desk.get("/me/feedback", right)["items"] == []  # not graded yet: the loop does it
    desk.sweep()
    mine = desk.get("/me/feedback", right)["items"]
    gold_lease = first[0][0]  # gold came first (gold_rate 1)
    assert [(f["project_id"], f["assignment_id"], f["task_id"], f["correct"]) for f in mine] == [
        (project.id, gold_lease["assignment_id"], gold_lease["task"]["id"], True)
    ]
    theirs = desk.get("/me/feedback", wrong)["items"]
    assert [f["correct"] for f in theirs] == [False]
    assert "label" not in str(theirs)  # never the expected answer
