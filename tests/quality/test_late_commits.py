"""A label's id is taken before its submit commits: on PostgreSQL a label with a lower id can
become visible after the loop processed higher ones. The loop still processes it, once."""

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from tests.conftest import Factory, scratch_postgres_database
from tests.quality.conftest import CHOICE3, Desk, team, truth_of

from quorum.db.engine import Database, make_engine
from quorum.db.models import (
    Annotation,
    Assignment,
    Project,
    QualityOutcome,
    QualityState,
    Review,
    ReviewSource,
    Role,
    User,
)
from quorum.db.types import utcnow
from quorum.domain import assignments, projects, quality_jobs, quality_loop, users
from quorum.domain.lease_rules import Submission
from quorum.domain.tasks import Record, import_tasks

GOLD = [{"data": {"n": n}, "gold": {"label": "a"}} for n in (1, 2)]


def graded_and_reviewed(session: Session) -> tuple[dict[int, bool], list[int]]:
    """Each label's gold outcome, and the labels sent to review (once per request)."""
    rows = session.execute(select(QualityOutcome.annotation_id, QualityOutcome.correct))
    outcomes = dict(rows.all())
    reviewed = session.scalars(select(Review.annotation_id).order_by(Review.annotation_id))
    return outcomes, list(reviewed)


def test_a_label_below_the_processed_ids_is_processed(desk: Desk, make: Factory) -> None:
    """The late label is written here with an id below the processed one, as a submit that
    commits late leaves it on PostgreSQL (the last test does that for real)."""
    owner, (early, late) = make.person("owner"), team(make, 2)
    project = make.project(
        owner, CHOICE3, {"review_rate": 1.0}, members={Role.annotator: [early, late]}
    )
    make.tasks(project, GOLD)
    held, lease = desk.next(project.id, late), desk.next(project.id, early)
    assert held is not None and lease is not None
    first = desk.submit(lease, early, {"label": "a"})
    assert desk.sweep().ticks == [project.id]
    lower = write_late_label(desk, held, {"label": "b"})
    assert desk.sweep().ticks == [project.id]
    assert desk.sweep().ticks == []
    assert graded_and_reviewed(desk.session) == (
        {first["id"]: True, lower: False},
        [lower, first["id"]],
    )
    state = desk.session.get(QualityState, project.id)
    assert state is not None and state.ticks == 2


def test_a_late_label_is_new_to_the_next_re_aggregation(desk: Desk, make: Factory) -> None:
    """A re-aggregation sends to review an annotator's latest labels since the previous one
    when they disagree with the consensus: a label processed after it is new, whatever its id."""
    owner, good, (contrarian,) = make.person("owner"), team(make, 2), team(make, 1, name="c")
    members = {Role.annotator: [*good, contrarian]}
    project = make.project(owner, CHOICE3, {"overlap": 3}, members=members)
    make.tasks(project, [{"data": {"n": i, "truth": "abc"[i % 3]}} for i in range(30)])
    wrong = {"a": "b", "b": "c", "c": "a"}
    for person in good:
        desk.label(project.id, person, truth_of)
    desk.label(project.id, contrarian, lambda data: {"label": wrong[data["truth"]]}, most=29)
    held = desk.next(project.id, contrarian)
    assert held is not None
    assert desk.sweep().ticks == [project.id]
    assert desk.sweep().refits == [project.id]  # the consensus, and who disagrees with it
    earlier = flagged(desk.session)
    assert len(earlier) == 3
    lower = write_late_label(desk, held, {"label": wrong[held["task"]["data"]["truth"]]})
    assert desk.sweep().ticks == [project.id]
    quality_loop.refit(desk.session, project_of(desk.session, project.id))
    assert flagged(desk.session) == [lower, *earlier]  # the one label new since the last fit
    quality_loop.refit(desk.session, project_of(desk.session, project.id))
    assert flagged(desk.session) == [lower, *earlier]  # no tick since: nothing is new
    state = desk.session.get(QualityState, project.id, populate_existing=True)
    assert state is not None and state.fitted_tick == state.ticks == 2


def write_late_label(desk: Desk, lease: dict[str, Any], answers: dict[str, Any]) -> int:
    """Write the label of this lease with an id below every other label's, and commit."""
    assignment = desk.session.get(Assignment, lease["assignment_id"])
    assert assignment is not None
    lower = int(desk.session.scalar(select(func.min(Annotation.id))) or 0) - 1
    desk.session.add(
        Annotation(
            id=lower,
            assignment_id=assignment.id,
            project_id=assignment.project_id,
            task_id=assignment.task_id,
            user_id=assignment.user_id,
            answers=answers,
            duration_ms=5000,
        )
    )
    desk.session.commit()
    return lower


def flagged(session: Session) -> list[int]:
    """The labels the loop flagged, in id order."""
    session.expire_all()
    query = select(Review.annotation_id).where(Review.source == ReviewSource.flagged)
    return list(session.scalars(query.order_by(Review.annotation_id)))


def test_a_submit_that_commits_after_the_loop_passed_it_is_processed(
    request: pytest.FixtureRequest,
) -> None:
    """PostgreSQL: one submit takes the lower id and has not committed while another commits
    and the loop runs; once it commits, the next sweep grades it and samples it for review,
    and no sweep processes a label twice."""
    with scratch_postgres_database(request.config, "late") as url:
        engine = make_engine(url)
        database = Database(engine)
        project_id, (late, early), (held, lease) = two_leases(database)
        with database.session(write=True) as slow:
            # Its label's id is taken here; it commits only after the loop ran.
            taken = assignments.submit_view(slow, late, Submission(held, {"label": "b"}), utcnow())
            with database.session(write=True) as session:
                first = assignments.submit(session, lease, user_of(session, early), {"label": "a"})
            assert quality_jobs.sweep(database).ticks == [project_id]
            slow.commit()
        assert taken.id < first.id
        assert quality_jobs.sweep(database).ticks == [project_id]
        assert quality_jobs.sweep(database) == quality_jobs.Work([], [])
        with database.session() as session:
            assert graded_and_reviewed(session) == (
                {first.id: True, taken.id: False},
                [taken.id, first.id],
            )
        engine.dispose()


def two_leases(database: Database) -> tuple[int, list[int], list[int]]:
    """A project of two gold tasks, review_rate 1, and two annotators each holding a lease:
    (project id, annotator ids, their assignment ids), committed."""
    with database.session(write=True) as session:
        owner = users.create_user(session, "owner@example.com")
        people = [users.create_user(session, f"a{i}@example.com") for i in range(2)]
        policy = {"overlap": 1, "review_rate": 1.0}
        project = projects.create(session, owner, name="late", schema=CHOICE3, policy=policy)
        for person in people:
            projects.add_member(session, project, person.email, Role.annotator)
        import_tasks(session, project, [Record(i, item) for i, item in enumerate(GOLD)])
        leases = [assignments.lease(session, project, person) for person in people]
        held = [lease.assignment.id for lease in leases if lease is not None]
        assert len(held) == 2
        return project.id, [person.id for person in people], held


def user_of(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    assert user is not None
    return user


def project_of(session: Session, project_id: int) -> Project:
    project = session.get(Project, project_id)
    assert project is not None
    return project


def test_a_re_aggregation_overtaken_by_a_later_one_keeps_the_later_model(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: two re-aggregations overlap; the one that read fewer labels finishes last
    and must not replace the model of the one that read more."""
    with scratch_postgres_database(request.config, "refits") as url:
        engine = make_engine(url)
        database = Database(engine)
        with database.session(write=True) as session:
            owner = users.create_user(session, "owner@example.com")
            person = users.create_user(session, "a@example.com")
            project = projects.create(session, owner, name="refits", schema=CHOICE3)
            projects.add_member(session, project, person.email, Role.annotator)
            tasks = [{"data": {"n": n}} for n in range(6)]
            import_tasks(session, project, [Record(i, item) for i, item in enumerate(tasks)])
            project_id = project.id

        def label(count: int) -> None:
            with database.session(write=True) as session:
                for _ in range(count):
                    lease = assignments.lease(session, project_of(session, project_id), person)
                    assert lease is not None
                    assignments.submit(session, lease.assignment.id, person, {"label": "a"})
            assert quality_jobs.sweep(database).ticks == [project_id]

        label(2)
        real_fit, stale = quality_loop.adaptive_loop.fit, []

        def overtaken_fit(session: Session, project: Project) -> Any:
            fitted = real_fit(session, project)
            if not stale:  # the first re-aggregation: another one runs to its end meanwhile
                stale.append(fitted.labels)
                label(3)
                quality_jobs.run_refit(database, project_id)
            return fitted

        monkeypatch.setattr(quality_loop.adaptive_loop, "fit", overtaken_fit)
        with database.session(write=True) as slow:
            report = quality_loop.refit(slow, project_of(slow, project_id))
        with database.session() as session:
            state = session.get(QualityState, project_id)
            assert state is not None
            assert (state.fitted_labels, state.fitted_tick, state.ticks) == (5, 2, 2)
        assert stale == [2] and report.superseded
        engine.dispose()
