"""Adaptive overlap and escalation (requirement 6): one more label while a task's answer is
unsure, up to max_overlap; after two extra labels that still disagree, the next slot is kept
for a higher tier. Re-aggregation runs as a job (the loop's sweep), never on a request."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from tests.conftest import Factory, Person
from tests.quality.conftest import CHOICE3, Desk, team, truth_of

from quorum.db.models import QualityState, Role, Task

EASY, HARD = 30, 2
POLICY = {"overlap": 2, "max_overlap": 5, "target_confidence": 0.9}


def split(index: int) -> Any:
    """Annotator ``index``: right on easy tasks; on hard ones, even annotators say a, odd b."""
    return lambda data: {"label": data["truth"] if data["easy"] else "ab"[index % 2]}


def setup(make: Factory, desk: Desk) -> tuple[Any, Person, list[Person], list[Person]]:
    juniors = team(make, 5, tier=1, name="junior")
    seniors = team(make, 2, tier=3, name="senior")
    owner = make.person("owner")
    project = make.project(owner, CHOICE3, POLICY, members={Role.annotator: juniors + seniors})
    make.tasks(
        project, [{"data": {"n": i, "easy": True, "truth": "abc"[i % 3]}} for i in range(EASY)]
    )
    make.tasks(
        project, [{"data": {"n": 100 + i, "easy": False, "truth": "a"}} for i in range(HARD)]
    )
    return project, owner, juniors, seniors


def overlaps(session: Session, project_id: int) -> dict[str, list[tuple[int, int, int]]]:
    """(overlap, labels, min_tier) of the easy and the hard tasks."""
    session.expire_all()
    tasks = session.scalars(select(Task).where(Task.project_id == project_id).order_by(Task.id))
    found: dict[str, list[tuple[int, int, int]]] = {"easy": [], "hard": []}
    for task in tasks:
        kind = "easy" if task.data["easy"] else "hard"
        found[kind].append((task.overlap, task.n_submitted, task.min_tier))
    return found


def test_more_labels_where_unsure_then_a_higher_tier_then_stop(
    desk: Desk, make: Factory, session: Session
) -> None:
    project, owner, juniors, seniors = setup(make, desk)
    for i in (0, 1):
        assert len(desk.label(project.id, juniors[i], split(i))) == EASY + HARD
    # The first labels only ever get the base overlap: no model is fitted yet.
    assert desk.sweep().ticks == [project.id]
    assert overlaps(session, project.id)["hard"] == [(2, 2, 1)] * HARD
    # Re-aggregation is a job of its own: the next sweep, once enough labels came in.
    work = desk.sweep()
    assert (work.ticks, work.refits) == ([], [project.id])
    state = session.get(QualityState, project.id)
    assert state is not None and state.fitted_labels == 2 * (EASY + HARD)
    found = overlaps(session, project.id)
    assert found["easy"] == [(2, 2, 1)] * EASY  # agreed: done
    assert found["hard"] == [(3, 2, 1)] * HARD  # disagreed: one more label each
    # The third label (a) leaves it 2 to 1: still unsure, one more.
    assert len(desk.label(project.id, juniors[2], split(2))) == HARD
    desk.sweep()
    assert overlaps(session, project.id)["hard"] == [(4, 3, 1)] * HARD
    # Two extra labels and still split 2 to 2: the next slot is kept for a higher tier.
    assert len(desk.label(project.id, juniors[3], split(3))) == HARD
    desk.sweep()
    assert overlaps(session, project.id)["hard"] == [(5, 4, 2)] * HARD
    assert desk.get(f"/projects/{project.id}/quality", owner)["escalated_waiting"] == HARD
    assert desk.next(project.id, juniors[4]) is None  # tier 1: nothing for them
    taken = desk.label(project.id, seniors[0], split(0))  # tier 3: the reserved slots
    assert [lease["task"]["data"]["easy"] for lease, _ in taken] == [False] * HARD
    # max_overlap reached: no more labels, however unsure.
    desk.sweep()
    assert overlaps(session, project.id)["hard"] == [(5, 5, 2)] * HARD
    assert desk.next(project.id, seniors[1]) is None


def test_labels_of_a_paused_annotator_are_replaced(
    desk: Desk, make: Factory, session: Session
) -> None:
    good, bad, spare = team(make, 3)
    owner = make.person("owner")
    policy = {"gold_rate": 1.0, "overlap": 2, "max_overlap": 3}
    project = make.project(owner, CHOICE3, policy, members={Role.annotator: [good, bad, spare]})
    make.tasks(project, [{"data": {"n": i, "truth": "a"}} for i in range(6)])
    gold = {"label": "b"}
    make.tasks(project, [{"data": {"n": 10 + i, "truth": "b"}, "gold": gold} for i in range(4)])
    # Four gold tasks, all wrong, then two real tasks; the good annotator labels everything.
    desk.label(project.id, bad, lambda data: {"label": "c"}, most=6)
    desk.label(project.id, good, truth_of)
    assert desk.sweep().ticks == [project.id]
    standing = desk.get(f"/projects/{project.id}/quality", owner)["annotators"]
    assert [a["paused"] for a in standing if a["user_id"] == bad.user.id] == [True]
    # Paused: their two real labels no longer count, so those two tasks get a slot each to
    # replace them (no model is needed for that, and max_overlap counts usable labels).
    session.expire_all()
    real = session.scalars(
        select(Task).where(Task.project_id == project.id, Task.gold.is_(None)).order_by(Task.id)
    ).all()
    assert [(t.overlap, t.n_submitted) for t in real] == [(3, 2)] * 2 + [(2, 1)] * 4
    desk.label(project.id, spare, truth_of)
    desk.sweep()
    session.expire_all()
    assert [(t.overlap, t.n_submitted) for t in real] == [(3, 3)] * 2 + [(2, 2)] * 4
