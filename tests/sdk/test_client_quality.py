"""The SDK's workforce and quality-loop calls against a real server; the loop's sweep is run by
the test (the server's thread is off in these tests)."""

import itertools

import pytest
from tests.sdk.conftest import LiveServer

from quorum.client import Client, Conflict, Forbidden
from quorum.domain import quality_jobs

SCHEMA = {"questions": [{"name": "verdict", "kind": "choice", "options": ["correct", "wrong"]}]}
_emails = itertools.count()


def _person(server: LiveServer, *, admin: bool = False) -> tuple[Client, str]:
    email = f"quality{next(_emails)}@example.com"
    return Client(server.url, server.token_for(email, admin=admin)), email


def test_profiles_trust_pause_and_feedback(live_server: LiveServer) -> None:
    (admin, _), (annotator, email) = _person(live_server, admin=True), _person(live_server)
    with admin, annotator:
        me = annotator.me()
        profile = admin.update_profile(me["id"], tier=2, domains={"medicine": 4})
        assert (profile["tier"], profile["domains"]) == (2, {"medicine": 4})
        assert annotator.profile() == profile == admin.profile(me["id"])
        assert [p["user_id"] for p in admin.workforce(domain="medicine")] == [me["id"]]
        with pytest.raises(Forbidden):
            annotator.update_profile(me["id"], tier=3)
        policy = {"gold_rate": 1.0, "gold_feedback": True, "required_domains": ["medicine"]}
        project = admin.create_project("checks", schema=SCHEMA, policy=policy)
        admin.add_member(project["id"], email, "annotator")
        gold = [{"data": {"n": i}, "gold": {"verdict": "correct"}} for i in range(3)]
        admin.upload_tasks(project["id"], [{"data": {"n": 9}}, *gold])
        while (lease := annotator.next(project["id"])) is not None:
            annotator.submit(lease["assignment_id"], {"verdict": "wrong"})
        quality_jobs.sweep(live_server.database)
        (row,) = [a for a in admin.quality(project["id"])["annotators"] if a["user_id"] == me["id"]]
        assert (row["trust"]["checks"], row["trust"]["checks_right"]) == (3, 0)
        assert row["paused"] and row["pause_reason"].startswith("auto: ")
        assert [f["correct"] for f in annotator.feedback()] == [False, False, False]
        assert annotator.my_trust()["projects"][0]["paused"] is True
        assert admin.unpause(project["id"], me["id"])["paused"] is False
        with pytest.raises(Conflict):
            admin.unpause(project["id"], me["id"])
        assert admin.pause(project["id"], me["id"], "on leave")["pause_reason"].endswith("on leave")
        with pytest.raises(Conflict):
            admin.reset_qualification(project["id"], me["id"])  # no qualification taken
