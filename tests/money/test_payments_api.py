"""The money endpoints: who sees spend, who grants, statements, payouts and their CSV."""

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from tests.conftest import Factory
from tests.money.conftest import CHOICE, paying_project

from quorum.db.models import Role
from quorum.db.types import utcnow
from quorum.domain import assignments


def test_spend_grants_statements_and_payouts(client: TestClient, make: Factory) -> None:
    world = paying_project(make, tasks=4, policy={"budget_cents": 100})
    annotator = world.annotators[0]
    admin = make.person("admin", admin=True)
    project = f"/api/v1/projects/{world.project.id}"
    lease = client.post(f"{project}/next", headers=annotator.headers).json()
    submitted = client.post(
        f"/api/v1/assignments/{lease['assignment_id']}/submit",
        json={"answers": {"label": "yes"}},
        headers=annotator.headers,
    )
    assert submitted.status_code == 200  # and the label earned: below

    spend = client.get(f"{project}/spend", headers=world.owner.headers).json()
    assert spend["spent_cents"] == 25 and spend["labels_to_finish"] == 3
    assert spend["forecast_cents"] == 100 and not spend["over_budget"]
    assert client.get(f"{project}/spend", headers=annotator.headers).status_code == 403

    bonus = {"email": annotator.user.email, "amount_cents": 300, "reason": "great catch"}
    granted = client.post(f"{project}/grants", json=bonus, headers=world.owner.headers)
    assert granted.status_code == 201 and granted.json()["annotator"] == annotator.user.pseudonym
    assert (
        client.post(f"{project}/grants", json=bonus, headers=annotator.headers).status_code == 403
    )
    entries = client.get(f"{project}/ledger", headers=world.owner.headers).json()["items"]
    assert [e["kind"] for e in entries] == ["earning", "bonus"]

    mine = client.get("/api/v1/me/statement", headers=annotator.headers).json()
    assert mine["totals"]["earned"] == 25 and mine["totals"]["bonuses"] == 300
    assert mine["balances"] == {"pending": 0, "payable": 325, "paid": 0}
    theirs = f"/api/v1/users/{annotator.user.id}/statement"
    assert client.get(theirs, headers=admin.headers).json()["balances"]["payable"] == 325
    assert client.get(theirs, headers=world.owner.headers).status_code == 404

    period = {"period": f"{utcnow().year - 1}-01"}  # long over: nothing was payable then
    assert client.post("/api/v1/payouts", json=period, headers=annotator.headers).status_code == 403
    for _ in range(2):  # nothing was due: no entry, so asking again is harmless
        assert client.post("/api/v1/payouts", json=period, headers=admin.headers).json() == []
    csv = client.get("/api/v1/payouts", params=period, headers=admin.headers)
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text == "period,user_id,pseudonym,email,name,amount_cents,amount\n"
    future = {"period": f"{utcnow().year + 1}-01"}
    reply = client.post("/api/v1/payouts", json=future, headers=admin.headers)
    assert reply.status_code == 422 and "not ended" in reply.json()["error"]["message"]


def test_the_api_stops_handing_out_work_at_the_budget(client: TestClient, make: Factory) -> None:
    """Through /next and /submit (on PostgreSQL the fast lease hands budgeted projects over to
    the session path, which counts under the project's lock)."""
    world = paying_project(make, tasks=10, annotators=3, policy={"budget_cents": 99})  # 3 labels
    project = f"/api/v1/projects/{world.project.id}"
    labelled = 0
    for _ in range(4):
        for person in world.annotators:
            lease = client.post(f"{project}/next", headers=person.headers)
            if lease.status_code == 204:
                continue
            submit = f"/api/v1/assignments/{lease.json()['assignment_id']}/submit"
            answer = {"answers": {"label": "no"}}
            assert client.post(submit, json=answer, headers=person.headers).status_code == 200
            labelled += 1
    assert labelled == 3
    spend = client.get(f"{project}/spend", headers=world.owner.headers).json()
    assert (spend["spent_cents"], spend["labels"]) == (75, 3)


@pytest.mark.parametrize(("budget_cents", "status"), [(75, 409), (100, 200)])
def test_a_late_label_over_the_budget_is_refused(
    client: TestClient,
    make: Factory,
    monkeypatch: pytest.MonkeyPatch,
    budget_cents: int,
    status: int,
) -> None:
    """As tests/money/test_budget.py's, through /next and /submit (on PostgreSQL the fast
    submit hands a late label in a budgeted project over to the session path, which admits)."""
    owner = make.person("owner")
    a, b, c, d = (make.person("annotator") for _ in range(4))
    policy = {"pay_per_task_cents": 25, "budget_cents": budget_cents, "overlap": 1}
    world = make.project(owner, CHOICE, policy, members={Role.annotator: [a, b, c, d]})
    make.tasks(world, [{"data": {"n": n}, "priority": 0 if n == 0 else 5} for n in range(3)])
    project, answer = f"/api/v1/projects/{world.id}", {"answers": {"label": "no"}}
    for person in (a, d):
        lease = client.post(f"{project}/next", headers=person.headers).json()
        submit = f"/api/v1/assignments/{lease['assignment_id']}/submit"
        assert client.post(submit, json=answer, headers=person.headers).status_code == 200
    held = client.post(f"{project}/next", headers=b.headers).json()["assignment_id"]
    make.tasks(world, [{"data": {"n": 3}, "priority": 5}])
    later = utcnow() + timedelta(hours=1)  # b's lease expired; c's lease takes its share
    monkeypatch.setattr(assignments, "utcnow", lambda: later)
    assert client.post(f"{project}/next", headers=c.headers).status_code == 200
    late = client.post(f"/api/v1/assignments/{held}/submit", json=answer, headers=b.headers)
    assert late.status_code == status
    if status == 409:
        assert "budget" in late.json()["error"]["message"]
    spent = client.get(f"{project}/spend", headers=owner.headers).json()["spent_cents"]
    assert spent == (50 if status == 409 else 75)
