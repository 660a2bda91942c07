"""The annotation loop under load: C annotators doing next + submit over HTTP (DESIGN §7).

    .venv/bin/python benchmarks/annotation_loop.py \
        --db postgresql://postgres@127.0.0.1/quorum_bench --workers 2 --annotators 32

Starts ``quorum serve`` itself on the given database (a temporary SQLite file by default; a
PostgreSQL database is created when missing, and should be a scratch one), creates a project with
``--tasks`` tasks of overlap ``--overlap`` and one account per annotator, imports the tasks over
HTTP, then lets every annotator lease and submit as fast as the server answers for ``--seconds``
(after ``--warmup`` seconds that are not counted). Afterwards it stops the server and checks the
assignment invariants from the database. Prints one JSON line.

The load generator is raw asyncio HTTP/1.1 on keep-alive connections: it shares the machine's
cores with the server and the database, so it must cost little per request.
"""

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import create_engine, make_url, text

from quorum.db.engine import Database, make_engine, normalize_url
from quorum.db.migrate import upgrade
from quorum.db.models import Role
from quorum.domain import assignment_audit, projects, users

# Round trips of the machine-speed probe (``probe``): about a quarter of a second.
PROBE_ROUND_TRIPS = 2_000

SCHEMA = {"questions": [{"name": "label", "kind": "choice", "options": ["yes", "no", "maybe"]}]}


@dataclass
class Setup:
    project_id: int
    owner_token: str
    annotator_tokens: list[str]


@dataclass
class CpuClock:
    """CPU seconds used, from /proc (Linux): by the server, by PostgreSQL backends serving the
    benchmark's database, by this process (the load), and by everything on the machine.

    The machine is shared with the database and the load generator, and maybe with other
    people's work: these figures say where the cores went during the measured window.
    """

    server_pid: int
    database_name: str | None

    def read(self) -> dict[str, float]:
        tick = os.sysconf("SC_CLK_TCK")
        used = {"server": 0.0, "database": 0.0, "client": 0.0}
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                role = self._role(int(pid))
                if role is not None:
                    used[role] += cpu_seconds(int(pid))
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        used["machine"] = (sum(fields) - fields[3] - fields[4]) / tick  # all but idle, iowait
        return used

    def _role(self, pid: int) -> str | None:
        if pid == os.getpid():
            return "client"
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            return None
        if pid == self.server_pid or parent == self.server_pid:
            return "server"
        if self.database_name and command.startswith("postgres:"):
            return "database" if f" {self.database_name} " in command else None
        return None


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) a process has used, from /proc; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Tally:
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    labels: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    cpu_start: dict[str, float] = field(default_factory=dict)
    cpu_end: dict[str, float] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what[:300])


def ensure_postgres_database(url: str) -> None:
    parsed = make_url(normalize_url(url))
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        found = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}
        ).scalar()
        if found is None:
            connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


def prepare(url: str, annotators: int, overlap: int) -> Setup:
    """A fresh project, its owner and annotators, each with an API token."""
    engine = make_engine(url)
    upgrade(engine)
    run = f"{int(time.time())}{random.randrange(10**6):06d}"
    with Database(engine).session(write=True) as session:
        owner = users.create_user(session, f"owner-{run}@bench.example")
        project = projects.create(
            session, owner, name=f"bench {run}", schema=SCHEMA, policy={"overlap": overlap}
        )
        _, owner_token = users.create_token(session, owner, "bench")
        tokens = []
        for i in range(annotators):
            user = users.create_user(session, f"a{i}-{run}@bench.example")
            projects.add_member(session, project, user.email, Role.annotator)
            tokens.append(users.create_token(session, user, "bench")[1])
        project_id = project.id
    engine.dispose()
    return Setup(project_id, owner_token, tokens)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(url: str, workers: int, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "QUORUM_DATABASE_URL": url}
    command = [sys.executable, "-m", "quorum", "serve", "--db", url, "--port", str(port)]
    command += ["--workers", str(workers)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}", process)
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_up(url: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with status {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def import_tasks(base: str, setup: Setup, n_tasks: int) -> None:
    lines = (json.dumps({"data": {"text": f"item {i}", "n": i}}) for i in range(n_tasks))
    reply = httpx.post(
        f"{base}/api/v1/projects/{setup.project_id}/tasks",
        content="\n".join(lines).encode(),
        headers={
            "Authorization": f"Bearer {setup.owner_token}",
            "Content-Type": "application/x-ndjson",
        },
        timeout=300,
    )
    if reply.status_code != 201:
        raise SystemExit(f"import failed: {reply.status_code} {reply.text[:300]}")


class Connection:
    """One keep-alive HTTP/1.1 connection: just enough protocol for JSON request and reply."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> "Connection":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, path: str, headers: bytes, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(body)}\r\n".encode()
            + headers
        )
        self.writer.write(head + b"\r\n" + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length = 0
        for line in raw.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        payload = await self.reader.readexactly(length) if length else b""
        return status, payload

    def close(self) -> None:
        self.writer.close()


async def annotate(
    port: int,
    project_id: int,
    token: str,
    seed: int,
    stop_at: float,
    count_from: float,
    tally: Tally,
) -> None:
    """Lease and submit until time is up or nothing is left for this annotator."""
    rng = random.Random(seed)
    connection = await Connection.open(port)
    auth = f"Authorization: Bearer {token}\r\n".encode()
    json_auth = auth + b"Content-Type: application/json\r\n"
    next_path = f"/api/v1/projects/{project_id}/next"
    try:
        while (start := time.perf_counter()) < stop_at:
            status, body = await connection.post(next_path, auth)
            leased = time.perf_counter()
            counted = start >= count_from
            if counted:
                tally.next_ms.append((leased - start) * 1000)
            if status == 204:
                return
            if status != 200:
                tally.error(f"next {status} {body[:200]!r}")
                continue
            assignment_id = json.loads(body)["assignment_id"]
            answer = rng.choice(("yes", "no", "maybe"))
            submission = b'{"answers":{"label":"%s"},"duration_ms":%d}' % (
                answer.encode(),
                rng.randrange(500, 9000),
            )
            path = f"/api/v1/assignments/{assignment_id}/submit"
            status, body = await connection.post(path, json_auth, submission)
            done = time.perf_counter()
            if status != 200:
                tally.error(f"submit {status} {body[:200]!r}")
            elif counted:
                tally.submit_ms.append((done - leased) * 1000)
                tally.labels += 1
    finally:
        connection.close()


async def load(
    port: int, setup: Setup, seconds: float, warmup: float, seed: int, clock: CpuClock
) -> Tally:
    tally = Tally()
    now = time.perf_counter()
    count_from, stop_at = now + warmup, now + warmup + seconds
    annotators = asyncio.gather(
        *(
            annotate(port, setup.project_id, token, seed + i, stop_at, count_from, tally)
            for i, token in enumerate(setup.annotator_tokens)
        )
    )
    await asyncio.sleep(warmup)
    tally.cpu_start = clock.read()
    await asyncio.sleep(seconds)
    tally.cpu_end = clock.read()
    await annotators
    return tally


def cpu_report(tally: Tally) -> dict[str, Any]:
    """CPU milliseconds per label for each part, and the CPU others took meanwhile."""
    spent = {k: tally.cpu_end[k] - tally.cpu_start[k] for k in tally.cpu_start}
    ours = spent["server"] + spent["database"] + spent["client"]
    labels = max(tally.labels, 1)
    return {
        "cpu_ms_per_label": {
            k: round(spent[k] * 1000 / labels, 3) for k in ("server", "database", "client")
        },
        "cpu_s_others": round(max(spent["machine"] - ours, 0.0), 2),
    }


def vacuum(url: str) -> None:
    """Fresh planner statistics after the import, as autovacuum would give a real database."""
    engine = make_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE" if "postgresql" in url else "ANALYZE")
    engine.dispose()


def probe(url: str, round_trips: int = PROBE_ROUND_TRIPS) -> float | None:
    """Microseconds per round trip of a one-row query on one connection, timed just before the
    load (PostgreSQL only). The same code on the same machine ran at 648 to 1,551 labels/s
    within 70 minutes, and round-trip times moved with it (benchmarks/RESULTS.md): this tells a run
    taken while the machine was slow from a change that made Quorum slower."""
    if not normalize_url(url).startswith("postgresql"):
        return None
    parsed = make_url(normalize_url(url)).set(drivername="postgresql")
    with psycopg.connect(parsed.render_as_string(hide_password=False), autocommit=True) as db:
        for i in range(100):  # past psycopg's threshold for preparing the statement
            db.execute("SELECT %s::int", (i,)).fetchone()
        started = time.perf_counter()
        for i in range(round_trips):
            db.execute("SELECT %s::int", (i,)).fetchone()
        return round(1e6 * (time.perf_counter() - started) / round_trips, 1)


def percentile(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def audit(url: str, project_id: int) -> dict[str, int]:
    engine = make_engine(url)
    with Database(engine).session() as session:
        found = assignment_audit.violations(session, project_id)
    engine.dispose()
    return found


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="quorum-bench-") as scratch:
        url = args.db or f"sqlite:///{scratch}/bench.db"
        if normalize_url(url).startswith("postgresql"):
            ensure_postgres_database(url)
        setup = prepare(url, args.annotators, args.overlap)
        port = free_port()
        log = Path(args.server_log or f"{scratch}/server.log")
        with server(url, args.workers, port, log) as process:
            import_tasks(f"http://127.0.0.1:{port}", setup, args.tasks)
            vacuum(url)
            round_trip_us = probe(url)
            parsed = make_url(normalize_url(url))
            clock = CpuClock(process.pid, parsed.database if "postgresql" in url else None)
            runner = asyncio.run
            if args.uvloop:
                import uvloop

                runner = uvloop.run
            tally = runner(load(port, setup, args.seconds, args.warmup, args.seed, clock))
        violations = audit(url, setup.project_id)
    return {
        "database": make_url(normalize_url(url)).get_backend_name(),
        "workers": args.workers,
        "annotators": args.annotators,
        "tasks": args.tasks,
        "overlap": args.overlap,
        "seconds": args.seconds,
        "labels": tally.labels,
        "labels_per_s": round(tally.labels / args.seconds, 1),
        "next_ms": {f"p{q}": percentile(tally.next_ms, q / 100) for q in (50, 95, 99)},
        "submit_ms": {f"p{q}": percentile(tally.submit_ms, q / 100) for q in (50, 95, 99)},
        **cpu_report(tally),
        "errors": tally.errors,
        "error_samples": tally.error_samples,
        "violations": sum(violations.values()),
        "violations_by_check": violations,
        "probe_round_trip_us": round_trip_us,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", help="database URL; default: a temporary SQLite file")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--annotators", type=int, default=32, help="concurrent annotators")
    parser.add_argument("--seconds", type=float, default=20, help="measured time")
    parser.add_argument("--warmup", type=float, default=2, help="uncounted time before it")
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--server-log", help="keep the server's output in this file")
    parser.add_argument(
        "--no-uvloop", dest="uvloop", action="store_false", help="plain asyncio client"
    )
    print(json.dumps(run(parser.parse_args())))


if __name__ == "__main__":
    main()
