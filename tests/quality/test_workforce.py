"""The workforce (requirement 1): profiles managed by admins and owners through the API, and
projects' required_domains / min_tier routing work only to annotators who have them."""

from tests.conftest import Factory
from tests.quality.conftest import CHOICE3, Desk, team

from quorum.db.models import Role


def test_admins_manage_profiles(desk: Desk, make: Factory) -> None:
    admin, person = make.person("admin", admin=True), make.person("ann")
    body = {"tier": 2, "pay_rate_cents": 35, "domains": {"Medicine": 4, "law": 1}}
    found = desk.client.patch(
        f"/api/v1/users/{person.user.id}/profile", json=body, headers=admin.headers
    )
    assert found.status_code == 200, found.text
    assert found.json()["domains"] == {"law": 1, "medicine": 4}  # names as policies write them
    assert (found.json()["tier"], found.json()["pay_rate_cents"]) == (2, 35)
    # Fields left out are kept; a null pay rate goes back to the project's.
    again = desk.client.patch(
        f"/api/v1/users/{person.user.id}/profile",
        json={"pay_rate_cents": None},
        headers=admin.headers,
    ).json()
    assert (again["tier"], again["pay_rate_cents"], again["domains"]["medicine"]) == (2, None, 4)
    assert desk.get("/me/profile", person) == again
    listed = desk.get("/workforce?domain=medicine&min_tier=2", admin)
    assert [p["user_id"] for p in listed["items"]] == [person.user.id]
    assert desk.get("/workforce?domain=law&min_tier=3", admin)["items"] == []


def test_profile_errors_name_the_field(desk: Desk, make: Factory) -> None:
    admin, person = make.person("admin", admin=True), make.person("ann")
    path = f"/api/v1/users/{person.user.id}/profile"
    for body, field in (
        ({"tier": 4}, "tier"),
        ({"domains": {"medicine": 6}}, "domains.medicine"),
        ({"domains": {"bad name!": 2}}, "domains.bad name!"),
        ({"colour": "red"}, "colour"),
    ):
        reply = desk.client.patch(path, json=body, headers=admin.headers)
        assert reply.status_code == 422, reply.text
        assert reply.json()["error"]["details"][0]["field"] == field
    missing = desk.client.patch("/api/v1/users/99999/profile", json={}, headers=admin.headers)
    assert missing.status_code == 404
    # The list's filter too (a NUL in it was a 500 on PostgreSQL).
    for domain in ("bad name!", "a\x00b"):
        listed = desk.client.get(
            "/api/v1/workforce", params={"domain": domain}, headers=admin.headers
        )
        assert listed.status_code == 422, listed.text
        assert listed.json()["error"]["details"][0]["field"] == "domain"


def test_owners_manage_their_members_but_not_pay(desk: Desk, make: Factory) -> None:
    owner, member, stranger = make.person("owner"), make.person("m"), make.person("s")
    make.project(owner, members={Role.annotator: [member]})
    path = f"/api/v1/users/{member.user.id}/profile"
    assert desk.client.patch(path, json={"tier": 3}, headers=owner.headers).json()["tier"] == 3
    reply = desk.client.patch(path, json={"pay_rate_cents": 1}, headers=owner.headers)
    assert reply.status_code == 403
    # Others' profiles: invisible to strangers, read-only to the member themselves.
    assert desk.client.get(path, headers=stranger.headers).status_code == 404
    assert desk.client.get(path, headers=member.headers).status_code == 200
    assert desk.client.patch(path, json={"tier": 1}, headers=member.headers).status_code == 403
    assert desk.client.get("/api/v1/workforce", headers=owner.headers).status_code == 403
    # Owning a project is no licence to promote yourself.
    own = f"/api/v1/users/{owner.user.id}/profile"
    assert desk.client.patch(own, json={"tier": 3}, headers=owner.headers).status_code == 403


def test_required_domains_and_min_tier_route_work(desk: Desk, make: Factory) -> None:
    admin = make.person("admin", admin=True)
    novice, expert, generalist, senior = team(make, 4)
    profiles = [
        (novice, {"domains": {"medicine": 2}, "tier": 2}),
        (expert, {"domains": {"medicine": 4, "law": 1}, "tier": 2}),
        (generalist, {"domains": {"law": 5}, "tier": 3}),
        (senior, {"domains": {"medicine": 5}, "tier": 1}),
    ]
    for person, body in profiles:
        path = f"/api/v1/users/{person.user.id}/profile"
        assert desk.client.patch(path, json=body, headers=admin.headers).status_code == 200
    policy = {"required_domains": ["medicine:3"], "min_tier": 2, "overlap": 4}
    project = make.project(
        admin, CHOICE3, policy, members={Role.annotator: [p for p, _ in profiles]}
    )
    make.tasks(project, [{"data": {"n": 1}}])
    # Only the annotator with medicine at level 3+ and tier 2+ is given work.
    assert desk.next(project.id, novice) is None  # medicine 2 < 3
    assert desk.next(project.id, generalist) is None  # no medicine
    assert desk.next(project.id, senior) is None  # tier 1 < 2
    assert desk.next(project.id, expert) is not None
    # A policy change re-routes at once: the rows behind the check are written with it.
    patch = {"policy": {**policy, "required_domains": ["law"], "min_tier": 3}}
    reply = desk.client.patch(f"/api/v1/projects/{project.id}", json=patch, headers=admin.headers)
    assert reply.status_code == 200, reply.text
    assert desk.next(project.id, generalist) is not None
