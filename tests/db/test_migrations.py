"""The migrations build exactly the schema the models describe, and can be undone."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from quorum.db.engine import make_engine
from quorum.db.migrate import downgrade, is_up_to_date, upgrade
from quorum.db.models import Base


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
