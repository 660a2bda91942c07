"""On SQLite a lease commits without an fsync and everything else with one (``db.engine``)."""

from pathlib import Path

from sqlalchemy import text

from quorum.db.engine import Database, make_engine

SAFETY = {1: "NORMAL", 2: "FULL"}


def _safety_in(database: Database, *, lazy: bool) -> str:
    with database.session(write=True, lazy_commit=lazy) as session:
        level = session.execute(text("PRAGMA synchronous")).scalar_one()
        session.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
        session.execute(text("INSERT INTO t VALUES (1)"))
        session.commit()
    return SAFETY[level]


def test_only_lazy_transactions_skip_the_fsync(tmp_path: Path) -> None:
    database = Database(make_engine(f"sqlite:///{tmp_path}/q.db"))
    try:
        assert _safety_in(database, lazy=False) == "FULL"
        assert _safety_in(database, lazy=True) == "NORMAL"
        assert _safety_in(database, lazy=False) == "FULL"  # the same connection, set back
        with database.session() as reader:
            assert reader.execute(text("SELECT count(*) FROM t")).scalar_one() == 3
    finally:
        database.engine.dispose()
