"""Import 1M NDJSON tasks and export 1M labels to Parquet, on SQLite and PostgreSQL.

Each measured step is the real command line (``quorum import``, ``quorum export``) in a
subprocess: its wall time, interpreter start included, and its peak memory (max RSS, from
``wait4``). The labels for the export are bulk-loaded straight into the tables first (not timed):
200,000 tasks of a choice and a rating question, 5 labels each from 50 simulated annotators.

    .venv/bin/python benchmarks/import_export.py                  # both databases
    .venv/bin/python benchmarks/import_export.py --db sqlite --tasks 100000 --labels 100000
    .venv/bin/python benchmarks/import_export.py --write-results  # update benchmarks/RESULTS.md

PostgreSQL: ``--postgres-url`` names a server; the database ``quorum_bench`` on it is dropped and
created for each run.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pyarrow.parquet as pq
from sqlalchemy import create_engine, text

from quorum.db.engine import Database, make_engine
from quorum.db.migrate import upgrade
from quorum.domain import projects, tasks, users
from quorum.domain.tasks import Record

ROOT = Path(__file__).resolve().parents[1]
QUORUM = Path(sys.executable).with_name("quorum")
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## Import and export"
TARGETS = {"import": 30.0, "export": 15.0}
MEMORY_TARGET_MB = 1024
ANNOTATORS = 50
LABELS_PER_TASK = 5
SCHEMA = {
    "questions": [
        {"name": "verdict", "kind": "choice", "options": ["correct", "partly", "wrong"]},
        {"name": "quality", "kind": "rating", "min": 1, "max": 5},
    ]
}


@dataclass
class Step:
    database: str
    step: str
    rows: int
    seconds: float
    cpu_seconds: float
    peak_mb: float

    @property
    def target(self) -> float:
        return TARGETS[self.step]


def main() -> None:
    args = parse_args()
    load_at_start = os.getloadavg()[0]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="quorum-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    tasks_file = work / "tasks.ndjson"
    write_tasks(tasks_file, args.tasks)
    steps = []
    for name in ["sqlite", "postgresql"] if args.db == "both" else [args.db]:
        url = fresh_database(name, work, args.postgres_url)
        steps += bench(name, url, tasks_file, args, work)
    print(json.dumps([asdict(s) for s in steps], indent=2))
    report = markdown(steps, args, (load_at_start, os.getloadavg()[0]))
    print(report)
    if args.write_results:
        record(report)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks to import")
    parser.add_argument("--labels", type=int, default=1_000_000, help="labels to export")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1/postgres")
    parser.add_argument("--workdir", help="where files go (default: a new temporary folder)")
    parser.add_argument("--method", default="ds", help="aggregation method of the export")
    parser.add_argument("--write-results", action="store_true", help=f"update {RESULTS}")
    return parser.parse_args()


def write_tasks(path: Path, n: int) -> None:
    """NDJSON tasks with an external_id and two data fields, about 150 bytes each."""
    with open(path, "wb") as out:
        for start in range(0, n, 100_000):
            out.write(
                b"".join(
                    orjson.dumps(
                        {
                            "external_id": f"q{i}",
                            "data": {
                                "question": f"Question {i}: what is the usual adult dose?",
                                "answer": f"{(i * 37) % 1000} mg, twice a day with food.",
                            },
                        }
                    )
                    + b"\n"
                    for i in range(start, min(start + 100_000, n))
                )
            )


def fresh_database(name: str, work: Path, postgres_url: str) -> str:
    if name == "sqlite":
        path = work / "bench.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    admin = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("DROP DATABASE IF EXISTS quorum_bench WITH (FORCE)"))
        connection.execute(text("CREATE DATABASE quorum_bench"))
    admin.dispose()
    return postgres_url.rsplit("/", 1)[0] + "/quorum_bench"


def bench(
    name: str, url: str, tasks_file: Path, args: argparse.Namespace, work: Path
) -> list[Step]:
    engine = make_engine(url)
    upgrade(engine)
    database = Database(engine)
    imported, labelled = make_projects(database, args.labels)
    n_imported = count_lines(tasks_file)
    seconds, cpu, peak = run([str(QUORUM), "import", str(imported), str(tasks_file), "--db", url])
    steps = [Step(name, "import", n_imported, seconds, cpu, peak)]
    load_labels(engine, labelled, args.labels)
    out = work / f"export-{name}.parquet"
    seconds, cpu, peak = run(
        [str(QUORUM), "export", str(labelled), "--format", "parquet", "--out", str(out),
         "--method", args.method, "--db", url]
    )  # fmt: skip
    steps.append(Step(name, "export", count_labels(out), seconds, cpu, peak))
    engine.dispose()
    return steps


def make_projects(database: Database, n_labels: int) -> tuple[int, int]:
    """An empty project to import into, and one with tasks for the labels (not timed)."""
    n_tasks = n_labels // LABELS_PER_TASK
    with database.session(write=True) as session:
        owner = users.create_user(session, "owner@example.com")
        empty = projects.create(session, owner, name="import", schema=SCHEMA)
        labelled = projects.create(
            session, owner, name="export", schema=SCHEMA, policy={"overlap": LABELS_PER_TASK}
        )
        for i in range(ANNOTATORS):
            users.create_user(session, f"annotator{i}@example.com")
        records = (
            Record(i, {"external_id": f"t{i}", "data": {"question": f"Q{i}", "answer": "A"}})
            for i in range(n_tasks)
        )
        tasks.import_tasks(session, session.merge(labelled), records)
        return empty.id, labelled.id


def load_labels(engine: object, project_id: int, n_labels: int) -> None:
    """``LABELS_PER_TASK`` labels per task by distinct annotators, straight into the tables."""
    from sqlalchemy import Engine

    assert isinstance(engine, Engine)
    rng = np.random.default_rng(0)
    with engine.begin() as connection:
        task_ids = np.array(
            connection.execute(
                text("SELECT id FROM tasks WHERE project_id = :p ORDER BY id"), {"p": project_id}
            )
            .scalars()
            .all()
        )
        annotators = np.array(
            connection.execute(
                text("SELECT id FROM users WHERE email LIKE 'annotator%' ORDER BY id")
            )
            .scalars()
            .all()
        )
        rows = label_rows(rng, project_id, task_ids, annotators, n_labels)
        insert_labels(connection, rows)
        connection.execute(
            text(
                "UPDATE tasks SET n_submitted = overlap, status = 'complete' WHERE project_id = :p"
            ),
            {"p": project_id},
        )


def label_rows(
    rng: np.random.Generator,
    project_id: int,
    task_ids: np.ndarray,
    annotators: np.ndarray,
    n_labels: int,
) -> list[tuple[object, ...]]:
    """Annotators right with probability 0.55..0.95 each; ratings near the truth."""
    n_tasks = n_labels // LABELS_PER_TASK
    task = np.repeat(task_ids[:n_tasks], LABELS_PER_TASK)
    offset = np.repeat(rng.integers(0, ANNOTATORS, n_tasks), LABELS_PER_TASK)
    user = annotators[(offset + np.tile(np.arange(LABELS_PER_TASK) * 7, n_tasks)) % ANNOTATORS]
    skill = np.linspace(0.55, 0.95, ANNOTATORS)[np.searchsorted(annotators, user)]
    truth = np.repeat(rng.integers(0, 3, n_tasks), LABELS_PER_TASK)
    right = rng.random(task.size) < skill
    verdict = np.where(right, truth, (truth + rng.integers(1, 3, task.size)) % 3)
    quality = np.clip(np.repeat(rng.integers(1, 6, n_tasks), LABELS_PER_TASK)
                      + rng.integers(-1, 2, task.size), 1, 5)  # fmt: skip
    options = SCHEMA["questions"][0]["options"]
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp()
    return [
        (i + 1, project_id, int(t), int(u),
         orjson.dumps({"quality": int(q), "verdict": options[v]}, option=orjson.OPT_SORT_KEYS)
         .decode(), int(d), datetime.fromtimestamp(now + i * 0.01, UTC))
        for i, (t, u, v, q, d) in enumerate(
            zip(task, user, verdict, quality, rng.integers(2000, 60000, task.size), strict=True)
        )
    ]  # fmt: skip


def insert_labels(connection: object, rows: list[tuple[object, ...]]) -> None:
    from sqlalchemy import Connection

    assert isinstance(connection, Connection)
    raw = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        with raw.cursor() as cursor:  # type: ignore[union-attr]
            copy_rows(
                cursor,
                "assignments (id, project_id, task_id, user_id, status, leased_at, "
                "expires_at, finished_at)",
                ((i, p, t, u, "submitted", at, at, at) for i, p, t, u, _, _, at in rows),
            )
            copy_rows(
                cursor,
                "annotations (id, assignment_id, project_id, task_id, user_id, "
                "answers, duration_ms, submitted_at)",
                ((i, i, p, t, u, a, d, at) for i, p, t, u, a, d, at in rows),
            )
        return  # fmt: skip
    stamp = "%Y-%m-%d %H:%M:%S.%f"
    raw.executemany(  # type: ignore[union-attr]
        "INSERT INTO assignments (id, project_id, task_id, user_id, status, leased_at, expires_at,"
        " finished_at) VALUES (?, ?, ?, ?, 'submitted', ?, ?, ?)",
        ((i, p, t, u, *[at.strftime(stamp)] * 3) for i, p, t, u, _, _, at in rows),
    )
    raw.executemany(  # type: ignore[union-attr]
        "INSERT INTO annotations (id, assignment_id, project_id, task_id, user_id, answers,"
        " duration_ms, submitted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ((i, i, p, t, u, a, d, at.strftime(stamp)) for i, p, t, u, a, d, at in rows),
    )


def copy_rows(cursor: object, table: str, rows: object) -> None:
    with cursor.copy(f"COPY {table} FROM STDIN") as copy:  # type: ignore[attr-defined]
        for row in rows:  # type: ignore[attr-defined]
            copy.write_row(row)


def run(command: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak memory (MB) of a command.

    NOTE: peak memory is the child's own ``VmHWM``, polled: ``wait4``'s ``ru_maxrss`` would
    report this (big) benchmark process's size, which Linux keeps from before ``exec``.
    """
    start, peak, before = time.perf_counter(), 0, children_cpu()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        while process.poll() is None:
            peak = max(peak, high_water_mark(process.pid))
            time.sleep(0.01)
        seconds = time.perf_counter() - start
        log.seek(0)
        output = log.read().decode()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {output}")
    print(output.strip(), file=sys.stderr)
    cpu = children_cpu() - before
    return round(seconds, 2), round(cpu, 2), round(peak / 2**20, 1)


def children_cpu() -> float:
    """CPU seconds of every child reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def high_water_mark(pid: int) -> int:
    """Peak resident bytes of a running process (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    kilobytes = [line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(kilobytes[0]) * 1024 if kilobytes else 0


def count_lines(path: Path) -> int:
    with open(path, "rb") as file:
        return sum(1 for _ in file)


def count_labels(path: Path) -> int:
    table = pq.read_table(path, columns=["n_labels"])
    return int(table.column("n_labels").to_numpy().sum())


def markdown(steps: list[Step], args: argparse.Namespace, load: tuple[float, float]) -> str:
    rows = [
        f"| {s.database} | {s.step} | {s.rows:,} | {s.seconds:.1f} s (< {s.target:.0f} s) | "
        f"{s.cpu_seconds:.1f} s | {s.peak_mb:,.0f} MB (< {MEMORY_TARGET_MB} MB) | "
        f"{'met' if s.seconds < s.target and s.peak_mb < MEMORY_TARGET_MB else 'MISSED'} |"
        for s in steps
    ]
    return "\n".join(
        [
            SECTION,
            "",
            f"Machine: {machine()}. Measured {datetime.now(UTC):%Y-%m-%d}; one-minute load average "
            f"{load[0]:.1f} at the start and {load[1]:.1f} at the end (other work on the machine "
            "slows wall time, not CPU time).",
            "",
            "Command: `.venv/bin/python benchmarks/import_export.py --write-results "
            f"--tasks {args.tasks} --labels {args.labels} --method {args.method}`. Each step is "
            "the real `quorum import` / `quorum export --format parquet` in a subprocess: wall "
            "time with interpreter start, CPU time (user + system), and peak memory as the "
            "process's own high-water mark (`VmHWM`). "
            "The database server's own CPU is not in the CPU column.",
            "",
            "| database | step | rows | wall time (target) | CPU time | peak memory (target) | |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            *NOTES,
            "",
        ]
    )


NOTES = [
    "What made these figures (profiled with pyinstrument):",
    "",
    "- Import: rows are checked as they stream and only flat row tuples are batched (holding "
    "parsed batches made the cyclic GC's full collections cost more than the checks: 8.5 s to "
    "3.4 s of parsing per million); valid rows take fast paths, failures rerun the full checks; "
    "one PostgreSQL `COPY` stays open across batches so the server stores rows while Python "
    "parses, through psycopg's unqueued writer (its queued one buffered 250 MB more); the "
    "`external_id` lookups use one array parameter (an IN list of 5,000 took psycopg 3 s per "
    "200k rows) and are skipped on a project's first import.",
    "- Export: labels are read once at the driver (1M rows: ORM 17 s, Core 9 s, driver 2 s), "
    "answers parsed by PyArrow's JSON reader with a schema per question kind, aggregated in "
    "NumPy; the second pass reads only tasks, through the `(project_id, id)` index of "
    "migration 0004 (before it, SQLite sorted the whole project for every batch).",
    "- Wall time on this shared 2-core machine rises with other sessions' load; the CPU column "
    "is what the commands themselves need (the database server runs on the other core).",
]


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line),
        platform.processor(),
    )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, Python {platform.python_version()}"


def record(report: str) -> None:
    """Replace this benchmark's section of RESULTS.md (others keep theirs)."""
    text_before = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmarks\n"
    start = text_before.find(SECTION)
    if start < 0:
        updated = text_before.rstrip("\n") + "\n\n" + report
    else:
        end = text_before.find("\n## ", start + len(SECTION))
        rest = text_before[end + 1 :] if end >= 0 else ""
        updated = text_before[:start] + report + ("\n" + rest if rest else "")
    RESULTS.write_text(updated, encoding="utf-8")


if __name__ == "__main__":
    main()
