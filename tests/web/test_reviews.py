"""Reviews: the queue, decisions (accept, reject with a comment, correct), and their pages."""

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session
from tests.conftest import Factory, Person
from tests.web.conftest import Visitor

from quorum.db.models import Annotation, Project, ReviewDecision, ReviewSource, ReviewStatus, Role
from quorum.domain import assignments, reviews
from quorum.domain.errors import Conflict, Forbidden, Invalid

Visit = Callable[[Person | None], Visitor]
SCHEMA = {"questions": [{"name": "label", "kind": "choice", "options": ["yes", "no"]}]}


@dataclass
class Setup:
    owner: Person
    reviewer: Person
    annotators: list[Person]
    project: Project
    labels: list[Annotation]


@pytest.fixture
def setup(make: Factory, session: Session) -> Setup:
    owner, reviewer = make.person("owner"), make.person("reviewer")
    team = [make.person("a"), make.person("b")]
    project = make.project(
        owner, SCHEMA, {"overlap": 2}, members={Role.reviewer: [reviewer], Role.annotator: team}
    )
    make.tasks(project, [{"data": {"q": "one"}}, {"data": {"q": "two"}}])
    labels = []
    for person, answer in zip(team, ["yes", "no"], strict=True):
        for _ in range(2):
            lease = assignments.lease(session, project, person.user)
            assert lease is not None
            labels.append(
                assignments.submit(session, lease.assignment.id, person.user, {"label": answer})
            )
    return Setup(owner, reviewer, team, project, labels)


def _send(session: Session, s: Setup, index: int) -> int:
    return reviews.send_to_review(
        session, s.labels[index], source=ReviewSource.sampled, reason="rate"
    ).id


def test_sending_twice_keeps_one_pending_review(session: Session, setup: Setup) -> None:
    first = _send(session, setup, 0)
    assert _send(session, setup, 0) == first
    assert setup.labels[0].review_status is ReviewStatus.pending


def test_the_queue_is_oldest_first_and_never_your_own(session: Session, setup: Setup) -> None:
    ids = [_send(session, setup, i) for i in (2, 0, 1)]
    reviewer = setup.reviewer.user
    assert reviews.pending_count(session, setup.project, reviewer) == 3
    item = reviews.next_in_queue(session, setup.project, reviewer)
    assert item is not None and item.review.id == ids[0]
    assert [o.annotation.answers for o in item.others] == [{"label": "yes"}]
    later = reviews.next_in_queue(session, setup.project, reviewer, after=ids[0])
    assert later is not None and later.review.id == ids[1]
    annotator = setup.annotators[0].user  # labels 0 and 1 are theirs
    assert reviews.pending_count(session, setup.project, annotator) == 1


def test_decisions(session: Session, setup: Setup) -> None:
    accept, reject, correct = (_send(session, setup, i) for i in (0, 1, 2))
    who, role = setup.reviewer.user, Role.reviewer
    reviews.decide(session, setup.project, role, accept, who, decision=ReviewDecision.accepted)
    with pytest.raises(Invalid, match="comment"):
        reviews.decide(session, setup.project, role, reject, who, decision=ReviewDecision.rejected)
    session.rollback()
    reviews.decide(
        session, setup.project, role, reject, who, decision=ReviewDecision.rejected, comment="wrong"
    )
    with pytest.raises(Invalid):
        reviews.decide(
            session,
            setup.project,
            role,
            correct,
            who,
            decision=ReviewDecision.corrected,
            answers={"label": "maybe"},
        )
    session.rollback()
    done = reviews.decide(
        session,
        setup.project,
        role,
        correct,
        who,
        decision=ReviewDecision.corrected,
        answers={"label": "yes"},
    )
    assert done.corrected_answers == {"label": "yes"}
    statuses = [session.get(Annotation, a.id).review_status for a in setup.labels[:3]]  # type: ignore[union-attr]
    assert statuses == [ReviewStatus.accepted, ReviewStatus.rejected, ReviewStatus.corrected]
    assert setup.labels[2].answers == {"label": "no"}  # the annotator's answer stays
    with pytest.raises(Conflict):
        reviews.decide(
            session, setup.project, role, accept, who, decision=ReviewDecision.rejected, comment="x"
        )


def test_nobody_decides_on_their_own_label(session: Session, setup: Setup) -> None:
    review = _send(session, setup, 0)
    with pytest.raises(Forbidden):
        reviews.decide(
            session,
            setup.project,
            Role.owner,
            review,
            setup.annotators[0].user,
            decision=ReviewDecision.accepted,
        )


def test_feedback_shows_decisions_but_never_corrections(session: Session, setup: Setup) -> None:
    review = _send(session, setup, 0)
    reviews.decide(
        session,
        setup.project,
        Role.reviewer,
        review,
        setup.reviewer.user,
        decision=ReviewDecision.corrected,
        answers={"label": "no"},
        comment="see guideline 3",
    )
    [feedback] = reviews.feedback_for(session, setup.annotators[0].user)
    assert (feedback.decision, feedback.comment) == (ReviewDecision.corrected, "see guideline 3")
    assert not hasattr(feedback, "corrected_answers")


def test_a_reviewer_rejects_from_the_page(visit: Visit, session: Session, setup: Setup) -> None:
    review = _send(session, setup, 0)
    visitor = visit(setup.reviewer)
    page = visitor.get(f"/projects/{setup.project.id}/review")
    assert page.status_code == 200 and f'data-review="{review}"' in page.text
    url = f"/projects/{setup.project.id}/reviews/{review}"
    refused = visitor.form(url, {"decision": "rejected"})
    assert refused.status_code == 422 and "say why" in refused.text
    done = visitor.form(url, {"decision": "rejected", "comment": "The answer is no."})
    assert done.status_code == 303
    session.expire_all()
    assert session.get(Annotation, setup.labels[0].id).review_status is ReviewStatus.rejected  # type: ignore[union-attr]
    annotator_page = visit(setup.annotators[0]).get("/projects").text
    assert "The answer is no." in annotator_page


def test_a_correction_from_the_page(visit: Visit, session: Session, setup: Setup) -> None:
    review = _send(session, setup, 1)
    visitor = visit(setup.owner)
    url = f"/projects/{setup.project.id}/reviews/{review}"
    assert (
        visitor.form(url, {"decision": "corrected", "answers_json": '{"label": "no"}'}).status_code
        == 303
    )
    review_row = reviews.latest_reviews(session, [setup.labels[1].id])[setup.labels[1].id]
    assert review_row.corrected_answers == {"label": "no"}


def test_owners_send_annotations_to_review_from_the_list(
    visit: Visit, session: Session, setup: Setup
) -> None:
    visitor = visit(setup.owner)
    listing = visitor.get(f"/projects/{setup.project.id}/annotations")
    assert listing.status_code == 200 and "Send to review" in listing.text
    target = setup.labels[3].id
    reply = visitor.form(
        f"/projects/{setup.project.id}/annotations/{target}/review",
        {"reason": "looks rushed", "next": "https://evil.example/"},
    )
    assert reply.status_code == 303 and reply.headers["location"] == "/projects"
    item = reviews.next_in_queue(session, setup.project, setup.reviewer.user)
    assert (
        item is not None and item.annotation.id == target and item.review.reason == "looks rushed"
    )
    assert (
        item.review.source is ReviewSource.manual
        and item.review.requested_by == setup.owner.user.id
    )
