"""Trust (requirement 4) and auto-pause (requirement 5): a Beta(1, 1) posterior per annotator and
domain with its 90% interval; confidently below the floor, an annotator is paused: 204, leases
freed, labels kept but left out of aggregation and export, the reason shown; owners un-pause."""

import json
from datetime import timedelta
from typing import Any

import pytest
from scipy.stats import beta
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from tests.conftest import Factory, Person
from tests.quality.conftest import CHOICE3, Desk, team, truth_of

from quorum.db.models import Annotation, Assignment, AssignmentStatus, Role, Task
from quorum.db.types import utcnow
from quorum.domain.trust import Trust


def mixed_project(
    make: Factory, people: list[Person], policy: dict[str, Any]
) -> tuple[Any, Person]:
    owner = make.person("owner")
    project = make.project(owner, CHOICE3, policy, members={Role.annotator: people})
    make.tasks(project, [{"data": {"n": i, "truth": "a"}} for i in range(6)])
    gold = {"label": "b"}
    make.tasks(project, [{"data": {"n": 10 + i, "truth": "b"}, "gold": gold} for i in range(4)])
    return project, owner


def of(quality: dict[str, Any], who: Person) -> dict[str, Any]:
    (found,) = [a for a in quality["annotators"] if a["user_id"] == who.user.id]
    return found


@pytest.mark.parametrize(("right", "total"), [(0, 0), (8, 10), (3, 4)])
def test_the_posterior_is_beta_one_plus_right_one_plus_wrong(right: int, total: int) -> None:
    trust = Trust(right, total)
    a, b = 1 + right, 1 + total - right
    assert trust.mean == pytest.approx(a / (a + b))
    assert trust.interval == pytest.approx(tuple(beta.ppf([0.05, 0.95], a, b)), abs=5e-7)
    assert trust.below(0.6) == pytest.approx(beta.cdf(0.6, a, b))


def test_trust_from_gold_in_the_api(desk: Desk, make: Factory, session: Session) -> None:
    (annotator,) = team(make, 1)
    admin = make.person("admin", admin=True)
    desk.client.patch(
        f"/api/v1/users/{annotator.user.id}/profile",
        json={"domains": {"medicine": 3}},
        headers=admin.headers,
    )
    policy = {"gold_rate": 1.0, "required_domains": ["medicine"], "accuracy_floor": 0.2}
    project, owner = mixed_project(make, [annotator], policy)
    answers = iter(["b", "b", "b", "c"])  # the four gold tasks come first: 3 of 4 right
    desk.label(project.id, annotator, lambda data: {"label": next(answers, data["truth"])})
    before = of(desk.get(f"/projects/{project.id}/quality", owner), annotator)
    assert before["trust"]["checks"] == 0  # nothing graded until the loop runs
    desk.sweep()
    quality = desk.get(f"/projects/{project.id}/quality", owner)
    mine = of(quality, annotator)
    low, high = beta.ppf([0.05, 0.95], 4, 2)
    assert mine["trust"] == pytest.approx(
        {"checks": 4, "checks_right": 3, "mean": 4 / 6, "low": low, "high": high, "credible": 0.9}
    )
    assert quality["domains"] == ["medicine"]
    assert [d["domain"] for d in mine["domains"]] == ["medicine"]
    assert mine["domains"][0]["mean"] == pytest.approx(4 / 6)
    # The annotator's own view counts labels submitted before today began (UTC): none yet.
    own = desk.get("/me/trust", annotator)
    assert own["domains"] == [] and own["projects"][0]["checks"] == 0
    yesterday = utcnow() - timedelta(days=1)
    session.execute(update(Annotation).values(submitted_at=yesterday))
    session.commit()
    own = desk.get("/me/trust", annotator)
    assert [(d["domain"], d["checks"], d["checks_right"]) for d in own["domains"]] == [
        ("medicine", 4, 3)
    ]
    assert own["projects"][0]["mean"] == pytest.approx(4 / 6)
    assert own["projects"][0]["paused"] is False


def test_a_confidently_bad_annotator_is_paused(desk: Desk, make: Factory, session: Session) -> None:
    good, bad = team(make, 2)
    project, owner = mixed_project(make, [good, bad], {"gold_rate": 1.0, "overlap": 2})
    # Four gold tasks first (gold_rate 1), all wrong, then two real tasks, and a third leased.
    desk.label(project.id, bad, lambda data: {"label": "c"}, most=6)
    held = desk.next(project.id, bad)
    assert held is not None
    desk.label(project.id, good, truth_of)
    assert desk.sweep().ticks == [project.id]
    quality = desk.get(f"/projects/{project.id}/quality", owner)
    mine = of(quality, bad)
    assert mine["paused"] and mine["labels_excluded"]
    assert mine["pause_reason"].startswith("auto: P(accuracy < 60%) = 99.")
    assert "0 of 4 graded labels right" in mine["pause_reason"]
    assert mine["p_below_floor"] == pytest.approx(1 - 0.4**5)
    assert not of(quality, good)["paused"]
    # Paused: no task, and the live lease was freed at once.
    assert desk.next(project.id, bad) is None
    lease = session.get(Assignment, held["assignment_id"], populate_existing=True)
    assert lease is not None and lease.status is AssignmentStatus.expired
    task = session.get(Task, lease.task_id, populate_existing=True)
    assert task is not None and task.n_leased == 0
    # The labels are kept, but left out of the aggregate and the export.
    kept = session.scalars(select(Annotation).where(Annotation.user_id == bad.user.id)).all()
    assert len(kept) == 6
    assert bad.user.pseudonym not in export(desk, project.id, owner)
    assert good.user.pseudonym in export(desk, project.id, owner)
    # The owner un-pauses; the evidence that paused them no longer counts.
    standing = f"/projects/{project.id}/annotators/{bad.user.id}"
    desk.post(f"{standing}/unpause", bad, status=403)
    assert desk.post(f"{standing}/unpause", owner)["paused"] is False
    desk.post(f"{standing}/unpause", owner, status=409)
    assert bad.user.pseudonym in export(desk, project.id, owner)
    assert desk.next(project.id, bad) is not None
    desk.sweep()
    assert not of(desk.get(f"/projects/{project.id}/quality", owner), bad)["paused"]


def test_owners_pause_by_hand_with_a_reason(desk: Desk, make: Factory) -> None:
    annotator, newcomer = team(make, 2)
    project, owner = mixed_project(make, [annotator, newcomer], {})
    desk.label(project.id, annotator, truth_of, most=1)
    standing = f"/projects/{project.id}/annotators/{annotator.user.id}"
    paused = desk.post(f"{standing}/pause", owner, {"reason": "copying answers"})
    assert paused["pause_reason"] == "by an owner: copying answers"
    desk.post(f"{standing}/pause", owner, {"reason": "again"}, status=409)
    assert desk.next(project.id, annotator) is None
    # A member who has not labelled yet may be paused too, even holding their first task.
    assert desk.next(project.id, newcomer) is not None
    first = f"/projects/{project.id}/annotators/{newcomer.user.id}/pause"
    assert desk.post(first, owner, {"reason": "not trained yet"})["paused"] is True
    assert desk.next(project.id, newcomer) is None
    outsider = make.person("outsider")
    for stranger in (outsider.user.id, 999999):
        url = f"/projects/{project.id}/annotators/{stranger}/pause"
        desk.post(url, owner, {"reason": "x"}, status=404)


def test_reviewers_see_that_someone_is_paused_never_why(desk: Desk, make: Factory) -> None:
    annotator, reviewer = team(make, 2)
    project, owner = mixed_project(make, [annotator], {})
    desk.client.post(
        f"/api/v1/projects/{project.id}/members",
        json={"email": reviewer.user.email, "role": "reviewer"},
        headers=owner.headers,
    )
    standing = f"/projects/{project.id}/annotators/{annotator.user.id}"
    desk.post(f"{standing}/pause", owner, {"reason": "suspected of sharing an account"})
    by_owner = of(desk.get(f"/projects/{project.id}/quality", owner), annotator)
    assert by_owner["pause_reason"] == "by an owner: suspected of sharing an account"
    assert by_owner["paused_at"] is not None
    by_reviewer = of(desk.get(f"/projects/{project.id}/quality", reviewer), annotator)
    assert by_reviewer["paused"] and by_reviewer["labels_excluded"]
    assert (by_reviewer["pause_reason"], by_reviewer["paused_at"]) == ("", None)


def export(desk: Desk, project_id: int, owner: Person) -> str:
    reply = desk.client.get(f"/api/v1/projects/{project_id}/export", headers=owner.headers)
    assert reply.status_code == 200, reply.text
    rows = [json.loads(line) for line in reply.text.splitlines()]
    return json.dumps([row["annotations"] for row in rows])
