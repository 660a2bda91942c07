"""Budgets: work stops exactly where the budget ends, however many annotators ask at once."""

import io
import threading
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from tests.conftest import Factory, Person
from tests.delivery.test_label_studio import EXPORT as LABEL_STUDIO_EXPORT
from tests.delivery.test_label_studio import SCHEMA as LABEL_STUDIO_SCHEMA
from tests.money.conftest import (
    CHOICE,
    Paying,
    lease_within_budget,
    paying_project,
    submit_and_record,
)
from tests.web.conftest import Visitor

from quorum.db.engine import Database, make_engine
from quorum.db.models import (
    Annotation,
    LedgerEntry,
    LedgerKind,
    Project,
    Review,
    ReviewDecision,
    ReviewSource,
    ReviewStatus,
    Role,
    User,
)
from quorum.domain import assignments, budget, history, projects, quality_loop, reviews, users
from quorum.domain.errors import Conflict
from quorum.domain.projects import schema_of
from quorum.domain.tasks import Record, import_tasks
from quorum.io.label_studio import read_label_studio

NOW = datetime(2030, 5, 1, tzinfo=UTC)


def test_leases_stop_where_the_budget_ends(session: Session, make: Factory) -> None:
    world = paying_project(make, tasks=10, annotators=4, policy={"budget_cents": 75})  # 3 labels
    a, b, c, d = world.annotators
    held = [lease_within_budget(session, world.project, p, NOW) for p in (a, b, c)]
    assert None not in held
    assert lease_within_budget(session, world.project, d, NOW) is None  # 3 live leases: full
    assert lease_within_budget(session, world.project, a, NOW) == held[0]  # a holder gets theirs
    assignments.skip(session, held[2], c.user, now=NOW)  # a skip gives its share back
    given_back = lease_within_budget(session, world.project, d, NOW)
    assert given_back is not None
    submit_and_record(session, held[0], a, NOW)
    submit_and_record(session, given_back, d, NOW)
    assert lease_within_budget(session, world.project, a, NOW) is None
    later = NOW + timedelta(hours=1)  # b's lease expired: its share is free again
    assert lease_within_budget(session, world.project, c, later) is not None
    figures = budget.spend(session, world.project, now=later)
    assert (figures.labels, figures.live_leases, figures.committed_cents) == (2, 1, 75)
    assert figures.spent_cents == 50 and figures.cost_per_label_cents == 25
    assert figures.left_cents == 0 and figures.labels_to_finish == 8
    assert figures.forecast_cents == 50 + 8 * 25 and figures.over_budget


@pytest.mark.parametrize(("budget_cents", "accepted"), [(75, False), (100, True)])
def test_a_late_label_needs_room_in_the_budget(
    session: Session, make: Factory, budget_cents: int, accepted: bool
) -> None:
    """b's lease expires; its share goes to c's lease of another task; b's late label on its
    still free slot then needs a share of its own."""
    owner = make.person("owner")
    a, b, c, d = (make.person("annotator") for _ in range(4))
    policy = {"pay_per_task_cents": 25, "budget_cents": budget_cents, "overlap": 1}
    project = make.project(owner, CHOICE, policy, members={Role.annotator: [a, b, c, d]})
    make.tasks(project, [{"data": {"n": n}, "priority": 0 if n == 0 else 5} for n in range(3)])
    first, second = (lease_within_budget(session, project, p, NOW) for p in (a, d))
    held = lease_within_budget(session, project, b, NOW)
    assert first is not None and second is not None and held is not None
    submit_and_record(session, first, a, NOW)
    submit_and_record(session, second, d, NOW)
    # ahead of b's task in the lease order, so the lease after b's expiry takes it
    make.tasks(project, [{"data": {"n": 3}, "priority": 5}])
    later = NOW + timedelta(hours=1)  # b's lease expired: its share is free again
    assert lease_within_budget(session, project, c, later) is not None
    spent = budget.spend(session, project, now=later).spent_cents
    if accepted:
        assert submit_and_record(session, held, b, later).assignment_id == held
        assert budget.spend(session, project, now=later).spent_cents == spent + 25
    else:
        with pytest.raises(Conflict, match="budget"):
            submit_and_record(session, held, b, later)
        session.rollback()
        figures = budget.spend(session, project, now=later)
        assert figures.spent_cents == spent and figures.committed_cents <= budget_cents


@pytest.mark.parametrize(("budget_cents", "admitted"), [(50, False), (75, True)])
def test_a_rejected_label_sent_to_review_again_needs_room_in_the_budget(
    app: FastAPI,
    client: object,
    session: Session,
    make: Factory,
    budget_cents: int,
    admitted: bool,
) -> None:
    """a's label is rejected and its share goes to c's label; sent to review again (here, and
    by the page's form), a's label would be paid once more, so it needs a share of its own."""
    world = paying_project(make, tasks=5, annotators=3, policy={"budget_cents": budget_cents})
    a, b, c = world.annotators
    first = _labelled(session, world, a)
    _labelled(session, world, b)
    _decide(session, world, _sent(session, first), ReviewDecision.rejected)  # 25 comes back
    _labelled(session, world, c)
    assert budget.spend(session, world.project, now=NOW).spent_cents == 50
    if admitted:
        _decide(session, world, _sent(session, first), ReviewDecision.accepted)
        figures = budget.spend(session, world.project, now=NOW)
        assert (figures.spent_cents, figures.committed_cents) == (75, 75)
        assert lease_within_budget(session, world.project, a, NOW) is None  # its share is taken
    else:
        with pytest.raises(Conflict, match="budget"):
            _sent(session, first)
        session.rollback()
        reviewer = Visitor(app)
        assert reviewer.sign_in(world.reviewer.user.email).status_code == 303
        page = reviewer.form(f"/projects/{world.project.id}/annotations/{first.id}/review")
        assert page.status_code == 409 and "budget" in page.text
        reviewer.client.close()
        session.refresh(first)
        assert first.review_status is ReviewStatus.rejected
        assert budget.spend(session, world.project, now=NOW).spent_cents == 50


def _labelled(session: Session, world: Paying, person: Person) -> Annotation:
    assignment = lease_within_budget(session, world.project, person, NOW)
    assert assignment is not None
    return submit_and_record(session, assignment, person, NOW)


def _sent(session: Session, label: Annotation) -> Review:
    return reviews.send_to_review(session, label, source=ReviewSource.manual, now=NOW)


def _decide(session: Session, world: Paying, review: Review, decision: ReviewDecision) -> None:
    reviews.decide(
        session, world.project, Role.reviewer, review.id, world.reviewer.user,
        decision=decision, comment="wrong", now=NOW,
    )  # fmt: skip


def test_labels_imported_with_their_history_cost_the_budget_nothing(
    session: Session, make: Factory
) -> None:
    """Four Label Studio labels come in with their tasks, all sampled for review: none earns,
    however it is reviewed, and the whole budget goes to new work."""
    owner, ann, reviewer = make.person("owner"), make.person("ann"), make.person("reviewer")
    policy = {"overlap": 3, "pay_per_task_cents": 25, "budget_cents": 100, "review_rate": 1.0}
    members = {Role.annotator: [ann], Role.reviewer: [reviewer]}
    project = make.project(owner, LABEL_STUDIO_SCHEMA, policy, members=members)
    records = read_label_studio(io.BytesIO(LABEL_STUDIO_EXPORT.read_bytes()), schema_of(project))
    assert history.import_history(session, project, records, now=NOW).annotations == 4
    figures = budget.spend(session, project, now=NOW)
    assert (figures.spent_cents, figures.committed_cents, figures.left_cents) == (0, 0, 100)
    report = quality_loop.tick(session, project, now=NOW)
    assert report.sampled + report.flagged == 4
    pending = session.scalars(select(Review).where(Review.project_id == project.id)).all()
    decisions = [ReviewDecision.accepted, ReviewDecision.corrected] + [ReviewDecision.rejected] * 2
    for review, decision in zip(pending, decisions, strict=True):
        reviews.decide(
            session, project, Role.reviewer, review.id, reviewer.user,
            decision=decision, comment="no", answers={"sentiment": "Neutral"}, now=NOW,
        )  # fmt: skip
    while (lease := assignments.lease(session, project, ann.user, now=NOW)) is not None:
        answers = {"sentiment": "Positive"}
        assignments.submit(session, lease.assignment.id, ann.user, answers, now=NOW)
    new = session.scalars(select(Annotation.id).where(Annotation.user_id == ann.user.id)).all()
    earned = select(LedgerEntry.annotation_id).where(LedgerEntry.kind == LedgerKind.earning)
    assert len(new) == 4 and sorted(session.scalars(earned)) == sorted(new)
    assert budget.spend(session, project, now=NOW).spent_cents == 100
    # the budget is spent; a rejected imported label costs nothing to review again
    rejected = reviews.get_annotation(session, project, pending[-1].annotation_id)
    reviews.send_to_review(session, rejected, source=ReviewSource.manual, now=NOW)
    assert budget.spend(session, project, now=NOW).spent_cents == 100


def test_no_budget_or_no_pay_never_limits(session: Session, make: Factory) -> None:
    free = paying_project(
        make, tasks=3, annotators=3, policy={"pay_per_task_cents": 0, "budget_cents": 0}
    )
    open_ended = paying_project(make, tasks=3, annotators=3)
    for world in (free, open_ended):
        assert all(lease_within_budget(session, world.project, p, NOW) for p in world.annotators)


@pytest.mark.parametrize("scratch_url", ["postgresql"], indirect=True)
def test_only_projects_with_a_budget_take_the_project_lock(scratch_url: str) -> None:
    """Another transaction holds the project's row; a budgeted lease waits for it (here: times
    out), an unbudgeted one does not touch it."""
    engine = make_engine(scratch_url)
    database = Database(engine)
    with database.session(write=True) as session:
        owner = users.create_user(session, "o@example.com")
        limited = projects.create(
            session,
            owner,
            name="b",
            schema=CHOICE,
            policy={"pay_per_task_cents": 5, "budget_cents": 50},
        )
        unlimited = projects.create(
            session, owner, name="u", schema=CHOICE, policy={"pay_per_task_cents": 5}
        )
        ids = (limited.id, unlimited.id, owner.id)
    with engine.connect() as holder:
        holder.execute(text("SELECT id FROM projects FOR NO KEY UPDATE"))
        with database.session(write=True) as session:
            session.execute(text("SET LOCAL lock_timeout = '300ms'"))
            assert budget.admit_lease(session, ids[1], ids[2], NOW)
            with pytest.raises(OperationalError, match="lock timeout"):
                budget.admit_lease(session, ids[0], ids[2], NOW)
        holder.rollback()
    engine.dispose()


@pytest.mark.parametrize("scratch_url", ["postgresql"], indirect=True)
def test_a_rejected_label_sent_to_review_again_takes_the_project_lock(scratch_url: str) -> None:
    """Its room in the budget is counted as a lease's is, under the project's row: another
    transaction holding the row makes it wait (here: time out)."""
    engine = make_engine(scratch_url)
    database = Database(engine)
    with database.session(write=True) as session:
        owner = users.create_user(session, "o@example.com")
        policy = {"pay_per_task_cents": 5, "budget_cents": 50}
        project = projects.create(session, owner, name="b", schema=CHOICE, policy=policy)
        annotator = users.create_user(session, "a@example.com")
        projects.add_member(session, project, annotator.email, Role.annotator)
        import_tasks(session, project, [Record(0, {"data": {"n": 0}})])
        lease = assignments.lease(session, project, annotator, now=NOW)
        assert lease is not None
        label = assignments.submit(session, lease.assignment.id, annotator, {"label": "no"})
        review = reviews.send_to_review(session, label, source=ReviewSource.manual, now=NOW)
        reviews.decide(
            session, project, Role.owner, review.id, owner,
            decision=ReviewDecision.rejected, comment="wrong", now=NOW,
        )  # fmt: skip
        label_id = label.id
    with engine.connect() as holder:
        holder.execute(text("SELECT id FROM projects FOR NO KEY UPDATE"))
        with database.session(write=True) as session:
            session.execute(text("SET LOCAL lock_timeout = '300ms'"))
            rejected = session.get(Annotation, label_id)
            assert rejected is not None
            with pytest.raises(OperationalError, match="lock timeout"):
                reviews.send_to_review(session, rejected, source=ReviewSource.manual, now=NOW)
        holder.rollback()
    engine.dispose()


@pytest.mark.parametrize("scratch_url", ["sqlite", "postgresql"], indirect=True)
def test_a_budget_stops_work_exactly_under_concurrent_annotators(scratch_url: str) -> None:
    """Twelve annotators lease and submit as fast as they can on committed transactions; the
    project can pay for 37 labels, and gets exactly 37, with no lease ever past the budget."""
    rate, affordable, n_annotators = 27, 37, 12
    engine = make_engine(scratch_url, pool_size=n_annotators + 2)
    database = Database(engine)
    with database.session(write=True) as session:
        owner = users.create_user(session, "owner@example.com")
        policy = {"pay_per_task_cents": rate, "budget_cents": rate * affordable + rate - 1}
        project = projects.create(session, owner, name="tight", schema=CHOICE, policy=policy)
        people = [users.create_user(session, f"a{i}@example.com") for i in range(n_annotators)]
        for person in people:
            projects.add_member(session, project, person.email, Role.annotator)
        import_tasks(session, project, [Record(i, {"data": {"n": i}}) for i in range(200)])
        project_id, user_ids = project.id, [p.id for p in people]
    start = threading.Barrier(n_annotators)
    errors: list[BaseException] = []

    def annotate(user_id: int) -> None:
        try:
            start.wait()
            while _lease_and_label(database, project_id, user_id):
                pass
        except BaseException as error:  # reported below: a thread cannot fail the test itself
            errors.append(error)

    threads = [threading.Thread(target=annotate, args=(u,)) for u in user_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    with database.session() as session:
        labels = session.scalar(select(func.count()).where(Annotation.project_id == project_id))
        assert labels == affordable
    engine.dispose()


def _lease_and_label(database: Database, project_id: int, user_id: int) -> bool:
    """One annotator's turn: a lease within budget, then its label; False when none is due."""
    now = datetime.now(UTC)
    with database.session(write=True) as session:
        project = session.get(Project, project_id)
        user = session.get(User, user_id)
        assert project is not None and user is not None
        view = assignments.lease_view(session, project_id, user_id, now)  # admits first
        session.commit()
        if view is None:
            return False
        # The committed work (labels and live leases) must never pass the budget.
        labels, leases = budget.committed_work(session, project_id, now)
        assert (labels + leases) * project.policy["pay_per_task_cents"] <= project.policy[
            "budget_cents"
        ]
        assignments.submit(session, view.assignment_id, user, {"label": "yes"}, now=now)
    return True
