"""Database CPU of one lease and one submit on PostgreSQL, without HTTP, load or contention.

    .venv/bin/python benchmarks/statement_cost.py \
        --db postgresql://postgres@127.0.0.1/quorum_bench --labels 2000 --annotators 4

Creates a project of ``--tasks`` tasks of overlap 3 and ``--annotators`` annotators, then lets
the annotators work one after the other, each taking ``--labels`` labels: the server's own
lease and submit flows (``leases_pg``, ``submits_pg``) run one at a time on two connections set
up as the server's pools are (leases commit asynchronously, submits durably). It reads the CPU
time of the two PostgreSQL backends from /proc (Linux, database on this machine) and prints one
JSON line per annotator: microseconds of database CPU per lease and per submit, and of wall
time per label.

Where the annotation benchmark's rate moves with everything on the machine, this isolates
what one statement costs the database, so two versions of a statement can be compared in
alternating runs. The order of the annotators is the point: all of them take the tasks in the
lease order (closest to completion first), so the second one finds the first one's tasks ahead
of everything else, and the later ones find finished tasks there.
"""

import argparse
import asyncio
import json
import random
import time
from typing import Any

from psycopg_pool import AsyncConnectionPool

from annotation_loop import cpu_seconds, ensure_postgres_database, prepare, vacuum
from quorum.db.engine import Database, make_engine, run_flow_async
from quorum.db.models import Project
from quorum.db.types import utcnow
from quorum.domain import leases_pg, pg_statements, submits_pg, users
from quorum.domain.lease_rules import Submission
from quorum.domain.tasks import Record, import_tasks

ANSWERS = ("yes", "no", "maybe")


async def connect(url: str, *, durable: bool) -> tuple[AsyncConnectionPool, int]:
    """A pool of one connection set up as the server's pool of that kind, and its backend."""
    settings: dict[str, Any] = {"autocommit": True}
    if not durable:
        settings["options"] = "-c synchronous_commit=off"
    pool = AsyncConnectionPool(url, min_size=1, max_size=1, kwargs=settings, open=False)
    await pool.open(wait=True)
    async with pool.connection() as connection:
        row = await (await connection.execute("SELECT pg_backend_pid()")).fetchone()
    assert row is not None
    return pool, int(row[0])


async def measure(url: str, args: argparse.Namespace) -> None:
    setup = prepare(url, args.annotators, overlap=3)
    engine = make_engine(url)
    with Database(engine).session(write=True) as session:
        project = session.get(Project, setup.project_id)
        assert project is not None
        records = (
            Record(i + 1, {"data": {"text": f"item {i}", "n": i}}) for i in range(args.tasks)
        )
        import_tasks(session, project, records)
    engine.dispose()
    vacuum(url)
    leasing, lease_pid = await connect(url, durable=False)
    submitting, submit_pid = await connect(url, durable=True)
    rng = random.Random(args.seed)
    for index, token in enumerate(setup.annotator_tokens):
        who = pg_statements.Token(users.token_digest(token))
        lease_cpu, submit_cpu = cpu_seconds(lease_pid), cpu_seconds(submit_pid)
        started = time.perf_counter()
        labels = 0
        while labels < args.labels and await label(leasing, submitting, setup.project_id, who, rng):
            labels += 1
        per_label = 1e6 / max(labels, 1)
        figures = {
            "annotator": index,
            "labels": labels,
            "lease_us": round((cpu_seconds(lease_pid) - lease_cpu) * per_label),
            "submit_us": round((cpu_seconds(submit_pid) - submit_cpu) * per_label),
            "wall_us_per_label": round((time.perf_counter() - started) * per_label),
        }
        print(json.dumps(figures), flush=True)
    await leasing.close()
    await submitting.close()


async def label(
    leasing: AsyncConnectionPool,
    submitting: AsyncConnectionPool,
    project_id: int,
    who: pg_statements.Token,
    rng: random.Random,
) -> bool:
    """Lease the next task and submit an answer; False when nothing is left."""
    lease = await run_flow_async(leasing, lambda: leases_pg.lease(project_id, who, utcnow()))
    if lease is None:
        return False
    answers = {"label": rng.choice(ANSWERS)}
    submission = Submission(lease.assignment_id, answers, rng.randrange(500, 9000), None)
    await run_flow_async(
        submitting, lambda: submits_pg.submit(lease.assignment_id, who, submission, utcnow())
    )
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True, help="a scratch PostgreSQL database URL")
    parser.add_argument("--annotators", type=int, default=4)
    parser.add_argument("--labels", type=int, default=2000, help="labels per annotator")
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    ensure_postgres_database(args.db)
    asyncio.run(measure(args.db, args))


if __name__ == "__main__":
    main()
