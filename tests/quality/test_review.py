"""Review (requirement 8): review_rate of labels sampled to reviewers, a correction counts as gold
for trust, rejected labels leave the aggregate."""

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from tests.conftest import Factory, Person
from tests.quality.conftest import CHOICE3, Desk, team, truth_of

from quorum.db.models import Annotation, Review, ReviewDecision, ReviewSource, Role
from quorum.domain import budget, quality_loop, reviews


def reviewed_project(
    make: Factory, people: list[Person], policy: dict[str, Any], tasks: int
) -> tuple[Any, Person, Person]:
    owner, reviewer = make.person("owner"), make.person("reviewer")
    members = {Role.annotator: people, Role.reviewer: [reviewer]}
    project = make.project(owner, CHOICE3, policy, members=members)
    make.tasks(project, [{"data": {"n": i, "truth": "abc"[i % 3]}} for i in range(tasks)])
    return project, owner, reviewer


def queued(session: Session, project_id: int, source: ReviewSource) -> list[int]:
    session.expire_all()
    query = select(Review.annotation_id).where(
        Review.project_id == project_id, Review.source == source
    )
    return sorted(session.scalars(query))


def test_review_rate_samples_labels_gold_included(
    desk: Desk, make: Factory, session: Session
) -> None:
    people = team(make, 2)
    project, _, _ = reviewed_project(make, people, {"review_rate": 0.25, "overlap": 2}, 40)
    make.tasks(project, [{"data": {"truth": "a"}, "gold": {"label": "a"}} for _ in range(10)])
    for person in people:
        desk.label(project.id, person, truth_of)
    desk.sweep()
    labels = session.scalars(select(Annotation.id).where(Annotation.project_id == project.id))
    # NOTE: a flagged label goes to review as flagged, not sampled (quality_loop.tick); which
    # labels the hash picks depends on their ids, which PostgreSQL's sequences do not reset
    flagged = set(queued(session, project.id, ReviewSource.flagged))
    picked = sorted(i for i in labels if quality_loop.sampled(project.id, i, 0.25))
    expected = [i for i in picked if i not in flagged]
    assert queued(session, project.id, ReviewSource.sampled) == expected
    assert 10 <= len(picked) <= 35  # a quarter of 100 labels, by a fixed hash
    desk.sweep()  # a rerun queues nothing twice
    assert queued(session, project.id, ReviewSource.sampled) == expected


def test_no_sampling_at_review_rate_zero(desk: Desk, make: Factory, session: Session) -> None:
    people = team(make, 1)
    project, _, _ = reviewed_project(make, people, {}, 20)
    desk.label(project.id, people[0], truth_of)
    desk.sweep()
    assert queued(session, project.id, ReviewSource.sampled) == []


def decide(
    session: Session, project: Any, reviewer: Person, annotation_id: int, **how: Any
) -> None:
    review = session.scalar(select(Review).where(Review.annotation_id == annotation_id))
    assert review is not None
    reviews.decide(session, project, Role.reviewer, review.id, reviewer.user, **how)


def test_a_label_decided_before_the_loop_samples_it_keeps_the_decision(
    desk: Desk, make: Factory, session: Session
) -> None:
    """A reviewer sends two labels to review and decides them before the loop's sweep samples
    every label: those two stay decided (queued again, the accepted one's pay would wait once
    more, and the rejected one's would leave a budget that gave its share to the third label)."""
    people = team(make, 3)
    policy = {"review_rate": 1.0, "pay_per_task_cents": 25, "budget_cents": 50}
    project, _, reviewer = reviewed_project(make, people, policy, 5)
    first, second = (
        desk.label(project.id, person, truth_of, most=1)[0][1] for person in people[:2]
    )
    decided = {first["id"]: ReviewDecision.rejected, second["id"]: ReviewDecision.accepted}
    for annotation_id, decision in decided.items():
        annotation = session.get(Annotation, annotation_id)
        assert annotation is not None
        reviews.send_to_review(session, annotation, source=ReviewSource.manual)
        decide(session, project, reviewer, annotation_id, decision=decision, comment="no")
    ((_, third),) = desk.label(project.id, people[2], truth_of, most=1)  # the rejected share
    desk.sweep()
    assert queued(session, project.id, ReviewSource.sampled) == [third["id"]]
    kept = select(Annotation.id, Annotation.review_status).where(Annotation.id.in_(decided))
    assert {i: s.value for i, s in session.execute(kept)} == {
        i: d.value for i, d in decided.items()
    }
    assert budget.spend(session, project).spent_cents == 50


def test_a_correction_counts_as_gold_and_a_rejection_leaves_the_aggregate(
    desk: Desk, make: Factory, session: Session
) -> None:
    first, second = team(make, 2)
    project, owner, reviewer = reviewed_project(
        make, [first, second], {"review_rate": 1.0, "overlap": 2}, 1
    )
    ((mine, _),) = desk.label(project.id, first, lambda data: {"label": "b"})
    ((theirs, _),) = desk.label(project.id, second, lambda data: {"label": "c"})
    desk.sweep()
    ids = queued(session, project.id, ReviewSource.sampled)
    assert len(ids) == 2
    # The reviewer corrects the first label to "c": the first annotator was wrong, and the
    # second, graded against the correction as against gold, was right.
    decide(
        session,
        project,
        reviewer,
        ids[0],
        decision=ReviewDecision.corrected,
        answers={"label": "c"},
    )
    quality = desk.get(f"/projects/{project.id}/quality", owner)
    trust = {a["user_id"]: a["trust"] for a in quality["annotators"]}
    assert (trust[first.user.id]["checks"], trust[first.user.id]["checks_right"]) == (1, 0)
    assert (trust[second.user.id]["checks"], trust[second.user.id]["checks_right"]) == (1, 1)
    # Rejecting the second label takes it out of the aggregate and the export.
    decide(session, project, reviewer, ids[1], decision=ReviewDecision.rejected, comment="no")
    row = export_rows(desk, project.id, owner)[0]
    assert [a["answers"]["label"] for a in row["annotations"]] == ["b"]
    assert row["answers"]["label"] == "b"
    assert mine["assignment_id"] != theirs["assignment_id"]


def export_rows(desk: Desk, project_id: int, owner: Person) -> list[dict[str, Any]]:
    reply = desk.client.get(f"/api/v1/projects/{project_id}/export", headers=owner.headers)
    assert reply.status_code == 200, reply.text
    return [json.loads(line) for line in reply.text.splitlines()]
