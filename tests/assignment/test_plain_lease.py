"""A project without qualification, hidden gold, tier or domain rules is leased from with a
smaller statement on PostgreSQL (``leases_pg._lease_plain``); these are the rules it must still
keep, and the switch between it and the full statement when a policy changes either way. The
same expectations hold on SQLite, which has one path."""

from sqlalchemy import update
from sqlalchemy.orm import Session
from tests.conftest import Factory, Person

from quorum.db.models import Project, Role, Task
from quorum.db.types import utcnow
from quorum.domain import assignments, pause, pg_statements, projects


def _on_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _leased_task(session: Session, project: Project, who: Person) -> int | None:
    lease = assignments.lease(session, project, who.user)
    return None if lease is None else lease.task.id


def test_a_paused_annotator_gets_nothing_until_unpaused(session: Session, make: Factory) -> None:
    owner, annotator = make.person("owner"), make.person("annotator")
    project = make.project(owner, members={Role.annotator: [annotator]})
    make.tasks(project, [{"data": {"n": i}} for i in range(3)])
    first = assignments.lease(session, project, annotator.user)
    assert first is not None
    pause.pause(session, project.id, annotator.user.id, "test", by=owner.user)
    session.commit()
    assert assignments.lease(session, project, annotator.user) is None
    pause.unpause(session, project.id, annotator.user.id, by=owner.user)
    again = assignments.lease(session, project, annotator.user)
    assert again is not None and again.task.id != first.task.id  # the freed lease is not theirs
    if _on_postgres(session):
        assert project.id not in pg_statements.HINTS.not_plain


def test_a_failed_qualification_blocks_after_it_is_dropped(session: Session, make: Factory) -> None:
    owner, annotator = make.person("owner"), make.person("annotator")
    project = make.project(owner, members={Role.annotator: [annotator]})
    make.tasks(project, [{"data": {"n": 0}}])
    worker = pause.ensure_worker(session, project.id, annotator.user.id)
    worker.qualification = "failed"
    session.commit()
    assert assignments.lease(session, project, annotator.user) is None


def test_an_escalated_task_waits_for_its_tier(session: Session, make: Factory) -> None:
    owner = make.person("owner")
    junior, senior = make.person("junior", tier=1), make.person("senior", tier=2)
    project = make.project(owner, members={Role.annotator: [junior, senior]})
    make.tasks(project, [{"data": {"n": 0}}, {"data": {"n": 1}}])
    first = session.query(Task.id).filter_by(project_id=project.id).order_by(Task.id).first()
    assert first is not None
    session.execute(update(Task).where(Task.id == first.id).values(min_tier=2))
    session.commit()
    assert _leased_task(session, project, junior) != first.id
    assert _leased_task(session, project, senior) == first.id


def test_the_lease_follows_a_policy_change_both_ways(session: Session, make: Factory) -> None:
    owner = make.person("owner")
    team = [make.person(f"a{i}") for i in range(3)]
    project = make.project(owner, policy={"overlap": 3}, members={Role.annotator: team})
    make.tasks(project, [{"data": {"n": i}} for i in range(4)])
    make.tasks(project, [{"data": {"n": 9}, "gold": {"label": "yes"}}])

    plain = assignments.lease_view(session, project.id, team[0].user.id, utcnow())
    assert plain is not None and not plain.hides_gold

    projects.update_project(session, project, {"policy": {"overlap": 3, "gold_rate": 0.5}})
    hidden = assignments.lease_view(session, project.id, team[1].user.id, utcnow())
    assert hidden is not None and hidden.hides_gold  # the full rules: ids become handles
    if _on_postgres(session):
        assert project.id in pg_statements.HINTS.not_plain

    projects.update_project(session, project, {"policy": {"gold_rate": 0}})
    again = assignments.lease_view(session, project.id, team[2].user.id, utcnow())
    assert again is not None and not again.hides_gold


def test_required_domains_take_the_full_rules(session: Session, make: Factory) -> None:
    owner, annotator = make.person("owner"), make.person("annotator")
    policy = {"required_domains": ["medicine"]}
    project = make.project(owner, policy=policy, members={Role.annotator: [annotator]})
    make.tasks(project, [{"data": {"n": 0}}])
    assert assignments.lease(session, project, annotator.user) is None  # no medicine on file
