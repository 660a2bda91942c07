"""The migrations build exactly the schema the models describe, and can be undone."""

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, delete, inspect, update
from sqlalchemy.orm import Session

from quorum.db.engine import make_engine
from quorum.db.migrate import downgrade, is_up_to_date, upgrade
from quorum.db.models import Assignment, Base, Project, ReviewSource, Role, Task, User
from quorum.domain import assignments, gold, projects, reviews, users
from quorum.domain.tasks import Record, import_tasks


def test_models_match_migrations(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = [
            d
            for d in compare_metadata(context, Base.metadata)
            if not _expression_index(d) and not _job_queue(d)
        ]
    assert diff == []


def _job_queue(difference: object) -> bool:
    # procrastinate's own tables (tests/quality/test_jobs.py installs its schema on PostgreSQL).
    thing = difference[1] if isinstance(difference, tuple) and len(difference) > 1 else None
    table = getattr(thing, "table", thing)  # an index names its table
    return str(getattr(table, "name", "")).startswith("procrastinate_")


def _expression_index(difference: object) -> bool:
    # Indexes on expressions (priority DESC) cannot be reflected on SQLite; both sides have them.
    return isinstance(difference, tuple) and getattr(difference[1], "name", "") == "ix_tasks_due"


def test_upgrade_downgrade_round_trip(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/round.db")
    upgrade(engine)
    assert is_up_to_date(engine)
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    upgrade(engine)
    assert "tasks" in inspect(engine).get_table_names()
    engine.dispose()


def test_sqlite_migrations_keep_the_rows_that_refer_to_a_rebuilt_table(tmp_path: object) -> None:
    """0008 rebuilds `annotations` on SQLite (batch mode). With foreign keys on, its DROP
    failed on the ledger's reference (and would have cascaded into reviews and gold outcomes):
    a database with paid, reviewed labels could not be migrated from 0007."""
    engine = make_engine(f"sqlite:///{tmp_path}/data.db")
    upgrade(engine)
    with Session(engine) as session:
        task = {"data": {"n": 1}, "gold": {"label": "a"}}
        project, person = _one_task(session, task, {"pay_per_task_cents": 25})
        lease = assignments.lease(session, project, person)
        assert lease is not None
        label = assignments.submit(session, lease.assignment.id, person, {"label": "b"})
        reviews.send_to_review(session, label, source=ReviewSource.sampled)
        gold.grade_gold(session, project, [label.id])
        session.commit()
    counted = ("annotations", "reviews", "ledger_entries", "quality_outcomes")

    def counts() -> list[int]:
        with engine.connect() as connection:
            return [
                connection.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one()
                for t in counted
            ]

    before = counts()
    assert all(before)
    downgrade(engine, "0007")
    assert counts() == before
    upgrade(engine)
    assert counts() == before and is_up_to_date(engine)
    with engine.connect() as connection:  # the keys are on again for the application
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_sqlite_never_hands_out_an_assignment_id_again(tmp_path: object) -> None:
    """A qualification reset deletes an annotator's latest leases; SQLite without AUTOINCREMENT
    gave their ids to the next lease (migration 0009)."""
    engine = make_engine(f"sqlite:///{tmp_path}/ids.db")
    upgrade(engine)
    with Session(engine) as session:
        project, person = _one_task(session, {"data": {"n": 1}})
        first = assignments.lease(session, project, person)
        assert first is not None
        taken = first.assignment.id
        session.execute(delete(Assignment).where(Assignment.id == taken))
        session.execute(update(Task).values(n_leased=0))
        session.commit()
        again = assignments.lease(session, project, person)
        assert again is not None and again.assignment.id > taken
    engine.dispose()


def _one_task(
    session: Session, task: dict[str, Any], policy: dict[str, Any] | None = None
) -> tuple[Project, User]:
    """A project of one choice question and this one task, with one annotator."""
    owner = users.create_user(session, "owner@example.com")
    person = users.create_user(session, "a@example.com")
    schema = {"questions": [{"name": "label", "kind": "choice", "options": ["a", "b"]}]}
    project = projects.create(session, owner, name="one", schema=schema, policy=policy)
    projects.add_member(session, project, person.email, Role.annotator)
    import_tasks(session, project, [Record(1, task)])
    return project, person


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/wal.db")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()


def test_migrations_form_one_line() -> None:
    from alembic.script import ScriptDirectory

    from quorum.db.migrate import alembic_config

    assert len(ScriptDirectory.from_config(alembic_config()).get_heads()) == 1
