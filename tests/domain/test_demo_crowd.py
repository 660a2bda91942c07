"""The demo's labelled project: the guideline's categories, and what the quality loop made of
the simulated annotators' labels (one seed per database; the loop's decisions are the product's
own, so these checks fail if a rule stops catching what it should)."""

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from quorum.db.models import (
    Annotation,
    Project,
    ProjectWorker,
    Review,
    Task,
    TaskStatus,
    User,
    Vendor,
    VendorLabel,
)
from quorum.domain import (
    aggregation,
    assignment_audit,
    audit_report,
    demo,
    demo_crowd,
    ledger,
    trust,
)


@pytest.mark.parametrize(
    ("systolic", "diastolic", "expected"),
    [
        (119, 79, "normal"),
        (120, 79, "elevated"),
        (129, 79, "elevated"),
        (129, 80, "stage 1 hypertension"),  # the diastolic decides: the higher category
        (130, 70, "stage 1 hypertension"),
        (139, 89, "stage 1 hypertension"),
        (140, 60, "stage 2 hypertension"),
        (118, 90, "stage 2 hypertension"),
        (180, 120, "stage 2 hypertension"),  # a crisis is above 180 and/or above 120
        (181, 100, "hypertensive crisis"),
        (150, 121, "hypertensive crisis"),
    ],
)
def test_categories_follow_the_guideline(systolic: int, diastolic: int, expected: str) -> None:
    assert demo_crowd.category(systolic, diastolic) == expected


def test_readings_cover_every_category_and_their_mean_decides() -> None:
    drawn = demo_crowd.readings(np.random.default_rng(1), 50)
    assert {r.answer for r in drawn} == set(demo_crowd.CATEGORIES)
    for reading in drawn:
        assert reading.mean == (
            (reading.first[0] + reading.second[0]) / 2,
            (reading.first[1] + reading.second[1]) / 2,
        )
        assert str(reading.first[0]) in reading.data()["readings"]


def test_each_habit_answers_as_described() -> None:
    rng = np.random.default_rng(3)
    drawn = demo_crowd.readings(rng, 400)
    by_habit = {who.habit: who for who in demo_crowd.ANNOTATORS}
    careful = [demo_crowd.answer_of(by_habit["careful"], r, rng) == r.answer for r in drawn]
    assert 0.85 < np.mean(careful) < 1
    same = {demo_crowd.answer_of(by_habit["same"], r, rng) for r in drawn}
    assert same == {demo_crowd.SAME_ANSWER}
    random = [demo_crowd.answer_of(by_habit["random"], r, rng) == r.answer for r in drawn]
    assert np.mean(random) < 0.35


@pytest.mark.usefixtures("seeded_coins")
def test_the_seeded_project_shows_what_the_loop_measured(session: Session) -> None:
    result = demo.seed(session)
    pid, name = result.projects[-1]
    assert name == demo.DEMO_MARK + demo_crowd.PROJECT_NAME
    project = session.get(Project, pid)
    assert project is not None
    assert assignment_audit.violations(session, pid) == dict.fromkeys(
        assignment_audit.violations(session, pid), 0
    )
    tasks = session.scalars(select(Task).where(Task.project_id == pid)).all()
    assert len(tasks) == demo_crowd.TASKS
    # Every real task is complete; a gold task may stay short when real work ran out first,
    # since gold only comes mixed into work (docs/quality.md).
    open_tasks = [
        (t.external_id, t.status, t.overlap, t.n_submitted, t.n_leased, t.min_tier)
        for t in tasks
        if t.status != TaskStatus.complete.value and t.gold is None
    ]
    assert not open_tasks

    emails = {u.id: u.email for u in session.scalars(select(User))}
    paused = {
        emails[w.user_id]: w.pause_reason
        for w in session.scalars(select(ProjectWorker).where(ProjectWorker.project_id == pid))
        if w.paused_at is not None
    }
    # Hidden gold pauses at 95% certainty, so a spammer whose first checks happen to be right
    # can go on a while (a random clicker is right one time in five): the loop catches one of
    # them at least, and never a careful annotator.
    spammers = {w.email for w in demo_crowd.ANNOTATORS if w.habit in {"random", "same"}}
    assert paused and set(paused) <= spammers
    assert all(reason.startswith("auto: P(accuracy < 60%)") for reason in paused.values())

    found = trust.in_project(session, pid)
    for who in demo_crowd.ANNOTATORS:
        user_id = next(i for i, e in emails.items() if e == who.email)
        assert found[user_id].total > 0, who.email  # everyone met hidden gold

    # The aggregate, spammers left out, recovers the guideline's answer on the tasks without
    # gold; majority vote over every label, spammers included, does worse.
    truth = demo_crowd.answers()
    query = select(Task.id, Task.external_id).where(Task.project_id == pid)
    external = {row.id: row.external_id for row in session.execute(query)}
    gold = set(
        session.scalars(select(Task.id).where(Task.project_id == pid, Task.gold.isnot(None)))
    )
    aggregate = aggregation.aggregate_project(session, project)
    answer = dict(
        zip(
            aggregate.task_id.tolist(),
            aggregate.questions["category"].answer.to_pylist(),
            strict=True,
        )
    )
    scored = [t for t in answer if t not in gold]
    assert len(scored) == demo_crowd.TASKS - len(gold) > 0
    accuracy = np.mean([answer[t] == truth[external[t]] for t in scored])
    assert accuracy >= 0.9

    # Labels went to review: a sample (review_rate) and every flagged one; the spend is the
    # labels at the project's pay.
    sources = dict(
        session.execute(
            select(Review.source, func.count())
            .where(Review.project_id == pid)
            .group_by(Review.source)
        ).all()
    )
    assert sources.get("sampled", 0) > 0 and sources.get("flagged", 0) > 0
    labels = session.scalar(select(func.count()).where(Annotation.project_id == pid))
    assert ledger.project_spend(session, pid) == labels * demo_crowd.POLICY["pay_per_task_cents"]

    # The vendor audit: every sampled label checked by the experts, the careful vendor first,
    # and each interval holds the vendor's accuracy over its whole delivery, which the report
    # estimated from the sample alone.
    audit = audit_report.report(session, project)
    assert [v.vendor for v in audit.vendors] == [name for name, _, _ in demo_crowd.VENDORS]
    for found_vendor in audit.vendors:
        assert found_vendor.delivered == demo_crowd.TASKS
        assert found_vendor.checked == found_vendor.sampled > 0
        given = session.execute(
            select(Task.external_id, VendorLabel.answers)
            .join(Task, Task.id == VendorLabel.task_id)
            .join(Vendor, Vendor.id == VendorLabel.vendor_id)
            .where(Vendor.name == found_vendor.vendor)
        ).all()
        whole = np.mean([answers["category"] == truth[task] for task, answers in given])
        assert found_vendor.wilson is not None
        assert found_vendor.wilson.low <= whole <= found_vendor.wilson.high


def test_the_demo_without_its_labelled_project(session: Session) -> None:
    result = demo.seed(session, labelled=False)
    assert all(demo_crowd.PROJECT_NAME not in name for _, name in result.projects)
    again = demo.seed(session)  # already there: nothing is created, the labelled one neither
    assert not again.created and again.projects == result.projects
