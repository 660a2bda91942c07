"""The spend page: budget, spend, forecast, cost per label and the ledger, for owners only."""

import json
import re

from fastapi import FastAPI
from sqlalchemy.orm import Session
from tests.conftest import Factory
from tests.money.conftest import lease_within_budget, paying_project, submit_and_record
from tests.web.conftest import Visitor

from quorum.db.types import utcnow
from quorum.domain import ledger


def test_owners_see_spend_forecast_and_entries(
    app: FastAPI, client: object, session: Session, make: Factory
) -> None:
    world = paying_project(make, tasks=4, policy={"budget_cents": 200})
    now = utcnow()
    for person in world.annotators:
        assignment = lease_within_budget(session, world.project, person, now)
        assert assignment is not None
        submit_and_record(session, assignment, person, now)
    admin = make.person("admin", admin=True)
    ledger.grant(
        session, world.project, world.annotators[0].user, 100, reason="night shift", by=admin.user
    )
    owner = Visitor(app)
    assert owner.sign_in(world.owner.user.email).status_code == 303
    page = owner.get(f"/projects/{world.project.id}/spend")
    assert page.status_code == 200
    text = page.text
    assert "1.50</b><span>spent of 2.00" in text  # two labels at 25¢ and a 1.00 bonus
    assert "2.00</b><span>forecast to completion" in text  # plus two labels still to finish
    assert "75.00¢" in text  # cost per label: 150¢ over two labels
    assert "night shift" in text and world.annotators[0].user.pseudonym in text
    assert world.annotators[0].user.email not in text
    spend = json.loads(re.search(r'id="chart-data">(.*?)</script>', text).group(1))["spend"]  # type: ignore[union-attr]
    assert [trace["name"] for trace in spend["data"]] == ["spent", "budget", "forecast"]
    spent, budget_line, _ = spend["data"]
    assert spent["y"] == [0, 1.5]  # from zero the day before: one day of spend is still a line
    assert spent["x"][0] < spent["x"][1] and budget_line["x"] == spent["x"]
    annotator = Visitor(app)
    assert annotator.sign_in(world.annotators[0].user.email).status_code == 303
    assert annotator.get(f"/projects/{world.project.id}/spend").status_code == 403
    dashboard = owner.get(f"/projects/{world.project.id}/dashboard").text
    assert f'href="/projects/{world.project.id}/spend"' in dashboard
    assert f'href="/projects/{world.project.id}/audit"' in dashboard
    owner.client.close()
    annotator.client.close()


def test_annotators_read_their_own_earnings(
    app: FastAPI, client: object, session: Session, make: Factory
) -> None:
    world = paying_project(make, tasks=2)
    me, other = world.annotators
    now = utcnow()
    assignment = lease_within_budget(session, world.project, me, now)
    assert assignment is not None
    submit_and_record(session, assignment, me, now)
    admin = make.person("admin", admin=True)
    ledger.grant(session, world.project, me.user, 500, reason="weekend cover", by=admin.user)
    mine = Visitor(app)
    assert mine.sign_in(me.user.email).status_code == 303
    page = mine.get("/account/earnings").text
    assert "5.25</b><span>due at the next payout" in page and "weekend cover" in page
    assert 'href="/account/earnings"' in mine.get("/account").text
    theirs = Visitor(app)
    assert theirs.sign_in(other.user.email).status_code == 303
    assert "weekend cover" not in theirs.get("/account/earnings").text
    mine.client.close()
    theirs.client.close()
