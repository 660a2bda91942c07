"""Spam and low-effort signals (requirement 7): each fires on a constructed case with its
explanation and sends the label to review, and stays quiet on a normal case."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from tests.conftest import Factory, Person
from tests.quality.conftest import CHOICE3, Desk, team, truth_of

from quorum.db.models import Annotation, Review, ReviewSource, ReviewStatus, Role
from quorum.domain import spam

TEXT = {
    "questions": [
        {"name": "label", "kind": "choice", "options": ["a", "b", "c"]},
        {"name": "why", "kind": "text"},
    ]
}
ESSAY = (
    "The response cites the trial correctly but overstates the effect size reported in "
    "the abstract, and it omits the main limitation the authors themselves point out."
)


def flagged(session: Session, project_id: int) -> dict[int, str]:
    """Annotation id -> reason of the loop's flags in the project."""
    session.expire_all()
    rows = session.execute(
        select(Review.annotation_id, Review.reason).where(
            Review.project_id == project_id, Review.source == ReviewSource.flagged
        )
    )
    return dict(rows.all())


def ids_of(session: Session, who: Person) -> list[int]:
    query = select(Annotation.id).where(Annotation.user_id == who.user.id).order_by(Annotation.id)
    return list(session.scalars(query))


def project_with(make: Factory, people: list[Person], schema: Any, n: int, **policy: Any) -> Any:
    owner = make.person("owner")
    project = make.project(owner, schema, policy, members={Role.annotator: people})
    make.tasks(project, [{"data": {"n": i, "truth": "abc"[i % 3]}} for i in range(n)])
    return project


def test_too_fast_relative_to_the_project(desk: Desk, make: Factory, session: Session) -> None:
    careful, hasty = team(make, 2)
    project = project_with(make, [careful, hasty], CHOICE3, 30)
    desk.label(project.id, careful, truth_of, most=5, duration_ms=8000)
    desk.sweep()  # too few timed labels yet to know what is fast here
    desk.label(project.id, careful, truth_of, most=19, duration_ms=8000)
    desk.sweep()
    desk.label(project.id, hasty, truth_of, most=2, duration_ms=2100)  # a quarter of 8 s is 2 s
    desk.label(project.id, hasty, truth_of, most=1, duration_ms=900)
    desk.sweep()
    reasons = flagged(session, project.id)
    fast = ids_of(session, hasty)[-1]
    assert list(reasons) == [fast]
    assert reasons[fast] == (
        "too fast: answered in 0.9 s, under a quarter of the project's median of 8.0 s"
    )
    assert session.get(Annotation, fast).review_status is ReviewStatus.pending  # type: ignore[union-attr]


def test_too_fast_needs_enough_timed_labels(desk: Desk, make: Factory, session: Session) -> None:
    careful, hasty = team(make, 2)
    project = project_with(make, [careful, hasty], CHOICE3, 30)
    desk.label(project.id, careful, truth_of, most=5, duration_ms=8000)
    desk.label(project.id, hasty, truth_of, most=1, duration_ms=100)
    desk.sweep()
    assert flagged(session, project.id) == {}


def test_straight_lining(desk: Desk, make: Factory, session: Session) -> None:
    honest, lazy = team(make, 2)
    project = project_with(make, [honest, lazy], CHOICE3, 30, overlap=2)
    desk.label(project.id, honest, truth_of)  # a, b, c in turn: a third of answers each
    desk.sweep()
    desk.label(project.id, lazy, lambda data: {"label": "c"}, most=10)
    desk.sweep()
    reasons = flagged(session, project.id)
    tenth = ids_of(session, lazy)[9]
    assert list(reasons) == [tenth]
    assert reasons[tenth].startswith("straight-lining: the same answer 'c' to 'label' on 10 tasks")


def test_the_same_answer_is_no_straight_line_when_it_is_the_usual_one(
    desk: Desk, make: Factory, session: Session
) -> None:
    first, second = team(make, 2)
    owner = make.person("owner")
    project = make.project(owner, CHOICE3, {}, members={Role.annotator: [first, second]})
    make.tasks(project, [{"data": {"truth": "a"}} for _ in range(30)])
    desk.label(project.id, first, truth_of, most=15)
    desk.label(project.id, second, truth_of, most=15)
    desk.sweep()
    assert flagged(session, project.id) == {}


def test_copy_paste_across_tasks_and_annotators(
    desk: Desk, make: Factory, session: Session
) -> None:
    writer, copier = team(make, 2)
    project = project_with(make, [writer, copier], TEXT, 6)
    desk.label(project.id, writer, lambda data: {"label": "a", "why": ESSAY}, most=1)
    desk.label(project.id, writer, lambda data: {"label": "a", "why": f"{data['n']} " * 20}, most=1)
    desk.label(
        project.id, copier, lambda data: {"label": "b", "why": "My own words: " + "x" * 40}, most=1
    )
    desk.sweep()
    assert flagged(session, project.id) == {}  # different texts (and short ones) are fine
    # Copied with a small edit, on another task, by another annotator.
    edited = ESSAY.replace("correctly", "correctly,").upper()
    desk.label(project.id, copier, lambda data: {"label": "a", "why": edited}, most=1)
    desk.sweep()
    reasons = flagged(session, project.id)
    copied, original = ids_of(session, copier)[-1], ids_of(session, writer)[0]
    assert list(reasons) == [copied]
    assert reasons[copied].startswith("copy-paste: the answer to 'why' is a near duplicate")
    assert f"of label {original} by another annotator on task" in reasons[copied]


def test_near_duplicates_by_minhash_and_jaccard() -> None:
    a, b = spam.shingles(ESSAY), spam.shingles(ESSAY.replace("trial", "study"))
    assert spam.jaccard(a, b) >= spam.NEAR
    assert set(spam.bands(ESSAY)) & set(spam.bands(ESSAY.replace("trial", "study")))
    assert not set(spam.bands(ESSAY)) & set(spam.bands(ESSAY[::-1]))


def test_systematic_disagreement_with_consensus(
    desk: Desk, make: Factory, session: Session
) -> None:
    good = team(make, 2)
    (contrarian,) = team(make, 1, name="contrarian")
    project = project_with(make, [*good, contrarian], CHOICE3, 30, overlap=3)
    wrong = {"a": "b", "b": "c", "c": "a"}
    desk.label(project.id, contrarian, lambda data: {"label": wrong[data["truth"]]})
    for person in good:
        desk.label(project.id, person, truth_of)
    desk.sweep()  # tick: the new labels
    assert flagged(session, project.id) == {}
    desk.sweep()  # re-aggregation: the consensus, and who disagrees with it
    reasons = flagged(session, project.id)
    assert sorted(reasons) == ids_of(session, contrarian)[-3:]  # their latest labels
    assert all(
        r.startswith("disagrees with the consensus: agrees on 0 of 30") for r in reasons.values()
    )
