"""Where the loop runs (DESIGN §8): a thread of the server on SQLite, started by the app's
lifespan; procrastinate jobs run by ``quorum worker`` on PostgreSQL. Never on a request."""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.conftest import Factory
from tests.quality.conftest import CHOICE3, Desk, team

from quorum.app import create_app
from quorum.config import Settings
from quorum.db.engine import Database, make_engine
from quorum.db.migrate import upgrade
from quorum.db.models import QualityOutcome, QualityState, Role
from quorum.domain import quality_jobs


def wait_for(done: Callable[[], bool], what: str) -> None:
    """Poll until ``done`` (the loop's thread works on its own schedule); fail after a minute."""
    deadline = time.monotonic() + 60
    while not done():
        assert time.monotonic() < deadline, f"the loop never got to {what}"
        time.sleep(0.05)


def gold_round(make: Factory) -> tuple[int, list[str]]:
    """A project with hidden gold, and the tokens of an owner and an annotator."""
    owner, (annotator,) = make.person("owner"), team(make, 1)
    project = make.project(
        owner, CHOICE3, {"gold_rate": 1.0}, members={Role.annotator: [annotator]}
    )
    make.tasks(project, [{"data": {"n": 1}}, {"data": {"n": 2}, "gold": {"label": "a"}}])
    return project.id, [owner.token, annotator.token]


def test_the_server_runs_the_loop_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/quorum.db"
    engine = make_engine(url)
    upgrade(engine)
    with Database(engine).session(write=True) as session:
        project_id, (owner, annotator) = gold_round(Factory(session))
    settings = Settings(database_url=url, environment="test", quality_loop_seconds=0.05)
    with TestClient(create_app(settings)) as client:  # the lifespan starts the loop's thread
        headers = {"Authorization": f"Bearer {annotator}"}
        lease = client.post(f"/api/v1/projects/{project_id}/next", headers=headers).json()
        reply = client.post(
            f"/api/v1/assignments/{lease['assignment_id']}/submit",
            json={"answers": {"label": "a"}},
            headers=headers,
        )
        assert reply.status_code == 200  # the request did not grade anything itself

        def graded() -> bool:
            path = f"/api/v1/projects/{project_id}/quality"
            found = client.get(path, headers={"Authorization": f"Bearer {owner}"}).json()
            return any(a["trust"]["checks"] == 1 for a in found["annotators"])

        wait_for(graded, "grading the gold label")
    engine.dispose()


def test_an_app_given_a_database_runs_no_loop(desk: Desk, make: Factory) -> None:
    """Tests pass their own database and run the sweeps themselves."""
    project_id, (_, annotator) = gold_round(make)
    headers = {"Authorization": f"Bearer {annotator}"}
    lease = desk.client.post(f"/api/v1/projects/{project_id}/next", headers=headers).json()
    desk.client.post(
        f"/api/v1/assignments/{lease['assignment_id']}/submit",
        json={"answers": {"label": "a"}},
        headers=headers,
    )
    assert desk.session.scalars(select(QualityOutcome)).all() == []
    assert quality_jobs.find_work(desk.database).ticks == [project_id]


def test_the_in_process_loop_sweeps_until_stopped(desk: Desk, make: Factory) -> None:
    project_id, (_, annotator) = gold_round(make)
    headers = {"Authorization": f"Bearer {annotator}"}
    lease = desk.client.post(f"/api/v1/projects/{project_id}/next", headers=headers).json()
    desk.client.post(
        f"/api/v1/assignments/{lease['assignment_id']}/submit",
        json={"answers": {"label": "a"}},
        headers=headers,
    )
    swept: list[quality_jobs.Work] = []
    original = quality_jobs.sweep

    def counted(database: Database) -> quality_jobs.Work:
        swept.append(original(database))
        return swept[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(quality_jobs, "sweep", counted)
        # NOTE: the thread gets the test's connection to itself: this thread only waits.
        loop = quality_jobs.InProcessLoop(desk.database, interval=0.01).start()
        try:
            wait_for(lambda: len(swept) >= 2, "two sweeps")
        finally:
            loop.stop()
    assert swept[0].ticks == [project_id]
    assert swept[1].ticks == []  # the first sweep did the work
    state = desk.session.get(QualityState, project_id, populate_existing=True)
    assert state is not None and state.ticks == 1


def test_a_procrastinate_worker_runs_the_jobs_on_postgresql(desk: Desk, make: Factory) -> None:
    if desk.database.is_sqlite:
        pytest.skip("the job queue is PostgreSQL's; SQLite runs the loop in the server")
    project_id, (_, annotator) = gold_round(make)
    headers = {"Authorization": f"Bearer {annotator}"}
    lease = desk.client.post(f"/api/v1/projects/{project_id}/next", headers=headers).json()
    desk.client.post(
        f"/api/v1/assignments/{lease['assignment_id']}/submit",
        json={"answers": {"label": "a"}},
        headers=headers,
    )
    assert asyncio.run(quality_jobs.run_once(desk.database)) == 1  # one tick job
    desk.session.expire_all()
    outcomes = desk.session.scalars(select(QualityOutcome)).all()
    assert [(o.source, o.correct) for o in outcomes] == [("gold", True)]
    assert quality_jobs.find_work(desk.database).ticks == []
    assert asyncio.run(quality_jobs.run_once(desk.database)) == 0  # nothing left to do
