"""Where the quality loop runs (DESIGN §8): jobs, never the request path.

- **PostgreSQL**: procrastinate. ``quorum worker`` runs :func:`run_worker`; a periodic task,
  every ``SWEEP_SECONDS``, looks for projects with labels no tick has processed (and for
  projects due a re-aggregation) and defers one ``tick`` (or ``refit``) job per project with a
  queueing lock, so a project never has two waiting; any number of workers on any hosts share
  the queue. The web servers never touch it: with no worker running, labels still arrive, and
  the loop catches up when one starts.
- **SQLite**: a thread in each ``quorum serve`` process (:class:`InProcessLoop`) runs the same
  sweep, doing the work itself; SQLite's single writer serialises it with everything else.

Both call :func:`find_work` and ``quorum.domain.quality_loop``'s ``tick`` and ``refit``.
"""

import asyncio
import logging
import threading
from dataclasses import dataclass

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy import select

from quorum.db.engine import Database
from quorum.db.models import Annotation, Project
from quorum.domain import quality_loop

log = logging.getLogger(__name__)
SWEEP_SECONDS = 5
QUEUE = "quality"
IN_PROCESS_SECONDS = 2.0


@dataclass(frozen=True)
class Work:
    ticks: list[int]  # projects with labels the loop has not seen
    refits: list[int]  # projects due a re-aggregation


def find_work(database: Database) -> Work:
    """Projects whose loop has something to do (a query per project, by index)."""
    ticks, refits = [], []
    with database.session() as session:
        projects = session.scalars(select(Project.id).order_by(Project.id)).all()
        for project_id in projects:
            waiting = session.scalar(
                select(Annotation.id)
                .where(Annotation.project_id == project_id, Annotation.loop_tick.is_(None))
                .limit(1)
            )
            if waiting is not None:
                ticks.append(project_id)
            elif quality_loop.refit_due(session, project_id):
                refits.append(project_id)
    return Work(ticks, refits)


def run_tick(database: Database, project_id: int) -> None:
    with database.session(write=True) as session:
        project = session.get(Project, project_id)
        if project is not None:
            report = quality_loop.tick(session, project)
            log.info("quality tick of project %s: %s", project_id, report)


def run_refit(database: Database, project_id: int) -> None:
    with database.session(write=True) as session:
        project = session.get(Project, project_id)
        if project is not None:
            report = quality_loop.refit(session, project)
            if report.superseded:
                log.info("re-aggregation of project %s superseded by a later one", project_id)
            else:
                log.info("re-aggregated project %s: %s labels", project_id, report.labels)


def sweep(database: Database) -> Work:
    """Do all the loop's work due now, in this process (SQLite, tests, the simulator)."""
    work = find_work(database)
    for project_id in work.ticks:
        run_tick(database, project_id)
    for project_id in work.refits:
        run_refit(database, project_id)
    return work


class InProcessLoop:
    """The loop on SQLite: a daemon thread sweeping every ``interval`` seconds."""

    def __init__(self, database: Database, interval: float = IN_PROCESS_SECONDS) -> None:
        self.database, self.interval = database, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="quorum-quality", daemon=True)

    def start(self) -> "InProcessLoop":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                sweep(self.database)
            except Exception:  # the next sweep tries again; a request never depends on it
                log.exception("quality loop sweep failed")


# --- procrastinate (PostgreSQL) ----------------------------------------------------------------


def make_app(database: Database) -> procrastinate.App:
    """The procrastinate app of ``quorum worker``, whose jobs use ``database``."""
    url = database.engine.url.set(drivername="postgresql")
    connector = procrastinate.PsycopgConnector(conninfo=url.render_as_string(hide_password=False))
    app = procrastinate.App(connector=connector)

    @app.task(name="quorum.quality.tick", queue=QUEUE)
    def tick(project_id: int) -> None:
        run_tick(database, project_id)

    @app.task(name="quorum.quality.refit", queue=QUEUE)
    def refit(project_id: int) -> None:
        run_refit(database, project_id)

    @app.periodic(cron=f"* * * * * */{SWEEP_SECONDS}")
    @app.task(name="quorum.quality.sweep", queue=QUEUE, queueing_lock="sweep")
    async def find(timestamp: int) -> None:
        await defer_work(app, database)

    return app


async def defer_work(app: procrastinate.App, database: Database) -> int:
    """Defer a ``tick`` (or ``refit``) job for each project with work due; returns how many.
    A queueing lock per project and kind keeps one waiting at most."""
    work = await asyncio.to_thread(find_work, database)
    deferred = 0
    for kind, ids in (("tick", work.ticks), ("refit", work.refits)):
        for project_id in ids:
            job = app.configure_task(f"quorum.quality.{kind}", queueing_lock=f"{kind}:{project_id}")
            try:
                await job.defer_async(project_id=project_id)
                deferred += 1
            except AlreadyEnqueued:  # one is waiting already: it will see these labels
                continue
    return deferred


async def prepare_schema(app: procrastinate.App) -> None:
    """Create procrastinate's tables the first time a worker starts on this database."""
    found = await app.connector.execute_query_one_async(
        "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present"
    )
    if not found["present"]:
        await app.schema_manager.apply_schema_async()


async def run_worker(database: Database, *, concurrency: int = 2) -> None:
    """``quorum worker``: run the loop's jobs until stopped."""
    app = make_app(database)
    async with app.open_async():
        await prepare_schema(app)
        # Finished jobs are deleted: a sweep every few seconds would otherwise grow the table.
        await app.run_worker_async(
            queues=[QUEUE], concurrency=concurrency, delete_jobs="successful"
        )


async def run_once(database: Database) -> int:
    """Defer the work due now and run the queue until it is empty (tests, and catching up
    by hand); returns how many jobs were deferred."""
    app = make_app(database)
    async with app.open_async():
        await prepare_schema(app)
        deferred = await defer_work(app, database)
        await app.run_worker_async(
            queues=[QUEUE],
            concurrency=1,
            wait=False,
            install_signal_handlers=False,
            delete_jobs="successful",
        )
    return deferred
