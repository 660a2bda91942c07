"""The vendor audit page: owners see the comparison chart and table and draw samples (CSRF)."""

import json
import re
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from tests.audit.conftest import World, make_world
from tests.audit.test_audits import _label_the_sample, records
from tests.conftest import Factory, Person
from tests.web.conftest import Visitor

from quorum.db.models import AuditSample
from quorum.domain import audits

SignIn = Callable[[Person], Visitor]


def _charts(html: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', html)
    assert found
    charts: dict[str, object] = json.loads(found.group(1))
    return charts


def test_owners_compare_vendors_and_draw_samples(
    signed_in: SignIn, session: Session, make: Factory
) -> None:
    world: World = make_world(make, 80)
    owner = signed_in(world.owner)
    page = owner.get(f"/projects/{world.project.id}/audit")
    assert page.status_code == 200 and "No vendor has delivered labels" in page.text
    for name, accuracy, price in (("Acme", 0.9, 11), ("Budget Labels", 0.6, 4)):
        rows = records(world.deliver(accuracy, seed=price).rows)
        audits.import_vendor_labels(session, world.project, name, rows, price_cents_per_label=price)
    refused = owner.client.post(f"/projects/{world.project.id}/audit/sample", data={"width": "0.3"})
    assert refused.status_code == 403  # no CSRF token
    drawn = owner.form(f"/projects/{world.project.id}/audit/sample", {"width": "0.3"})
    assert drawn.status_code == 303
    assert session.scalar(select(func.count()).select_from(AuditSample)) > 0
    _label_the_sample(session, world)
    page = owner.get(f"/projects/{world.project.id}/audit")
    assert "more tasks drawn for your experts" in page.text
    assert page.text.index("Acme") < page.text.index("Budget Labels")  # best first
    charts = _charts(page.text)
    assert set(charts) == {"vendors", "cost"}
    vendors = charts["vendors"]
    assert isinstance(vendors, dict) and vendors["data"][0]["x"] == ["Acme", "Budget Labels"]
    assert 'href="/api' not in page.text


def test_only_owners_audit(signed_in: SignIn, make: Factory) -> None:
    world = make_world(make, 5)
    expert = signed_in(world.experts[0])
    assert expert.get(f"/projects/{world.project.id}/audit").status_code == 403
    stranger = signed_in(make.person("stranger"))
    assert stranger.get(f"/projects/{world.project.id}/audit").status_code == 404
