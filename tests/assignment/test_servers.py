"""Real ``quorum serve`` processes: many annotators at once on several servers until a project is
complete, and a server killed with SIGKILL while it answers. The verdict comes from the tables.
"""

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from tests.assignment.conftest import Seeded, Server, seed

from quorum.db.engine import Database, make_engine
from quorum.db.models import Annotation, Task, TaskStatus
from quorum.domain import assignment_audit

# However wrong the server, the annotators give up after this long.
PATIENCE_SECONDS = 120


@dataclass
class Tally:
    """What the annotators saw: every 2xx submission, and anything else that is not a 2xx."""

    labels: dict[int, int] = field(default_factory=dict)  # annotation id -> assignment id
    failures: list[str] = field(default_factory=list)
    deadline: float = field(default_factory=lambda: time.monotonic() + PATIENCE_SECONDS)

    def out_of_time(self) -> bool:
        if time.monotonic() < self.deadline:
            return False
        self.failures.append("out of time")
        return True

    def expect(self, reply: httpx.Response, *statuses: int) -> None:
        if reply.status_code not in statuses:
            self.failures.append(f"{reply.request.url.path}: {reply.status_code} {reply.text}")


async def annotate(
    client: httpx.AsyncClient, project_id: int, token: str, rng: random.Random, tally: Tally
) -> None:
    """Label until nothing is due: reload now and then, skip now and then, retry submits with
    their Idempotency-Key now and then (as a client whose reply got lost would)."""
    auth = {"Authorization": f"Bearer {token}"}
    while not tally.out_of_time():
        reply = await client.post(f"/api/v1/projects/{project_id}/next", headers=auth)
        if reply.status_code == 204:
            return
        tally.expect(reply, 200)
        if reply.status_code != 200:
            return
        lease = reply.json()
        if rng.random() < 0.1:
            again = await client.post(f"/api/v1/projects/{project_id}/next", headers=auth)
            if again.json() != lease:
                tally.failures.append(f"a reload gave another lease: {lease} then {again.text}")
        path = f"/api/v1/assignments/{lease['assignment_id']}"
        if rng.random() < 0.05:
            tally.expect(await client.post(f"{path}/skip", headers=auth), 200)
            continue
        body = {"answers": {"label": rng.choice(["yes", "no"])}, "duration_ms": 500}
        keyed = auth | {"Idempotency-Key": f"{token[-12:]}-{lease['assignment_id']}"}
        for _ in range(2 if rng.random() < 0.1 else 1):
            reply = await client.post(f"{path}/submit", json=body, headers=keyed)
            tally.expect(reply, 200)
            if reply.status_code == 200:
                first = tally.labels.setdefault(reply.json()["id"], lease["assignment_id"])
                if first != lease["assignment_id"]:
                    tally.failures.append(f"label {reply.json()['id']} answered two leases")


async def label_everything(
    bases: list[str], seeded: Seeded, *, rounds: int = 3, seed_: int = 7
) -> Tally:
    """All annotators at once, spread over the servers, until none has anything due."""
    tally = Tally()
    clients = [httpx.AsyncClient(base_url=base, timeout=60) for base in bases]
    try:
        for round_ in range(rounds):
            await asyncio.gather(
                *(
                    annotate(
                        clients[i % len(clients)],
                        seeded.project_id,
                        token,
                        random.Random(seed_ * 1000 + round_ * 100 + i),
                        tally,
                    )
                    for i, token in enumerate(seeded.tokens)
                )
            )
    finally:
        for client in clients:
            await client.aclose()
    return tally


def check_tables(url: str, project_id: int, *, complete: bool) -> dict[str, Any]:
    """The verdict of the database: every invariant, and how much got labelled."""
    engine = make_engine(url)
    with Database(engine).session() as session:
        violations = assignment_audit.violations(session, project_id)
        labels = session.scalar(select(func.count()).where(Annotation.project_id == project_id))
        open_tasks = session.scalar(
            select(func.count()).where(
                Task.project_id == project_id, Task.status != TaskStatus.complete
            )
        )
        label_ids = set(
            session.scalars(select(Annotation.id).where(Annotation.project_id == project_id))
        )
    engine.dispose()
    assert not any(violations.values()), violations
    if complete:
        assert open_tasks == 0
    return {"labels": labels, "label_ids": label_ids}


def run_servers(url: str, tmp_path: Path, servers: list[Server], count: int) -> list[str]:
    for i in range(count):
        servers.append(Server(url, tmp_path / f"server{i}.log").start())
    for server in servers:
        server.wait_until_up()
    return [server.base for server in servers]


@pytest.mark.slow
def test_four_servers_on_postgresql_complete_a_project_exactly(
    scratch_postgres: str, servers: list[Server], tmp_path: Path
) -> None:
    tasks, overlap = 300, 3
    seeded = seed(scratch_postgres, 32, tasks, {"overlap": overlap})
    bases = run_servers(scratch_postgres, tmp_path, servers, 4)
    tally = asyncio.run(label_everything(bases, seeded))
    assert tally.failures == []
    found = check_tables(scratch_postgres, seeded.project_id, complete=True)
    assert found["labels"] == tasks * overlap
    assert found["label_ids"] == set(tally.labels)


@pytest.mark.slow
def test_one_server_on_sqlite_completes_a_project_exactly(
    scratch_sqlite: str, servers: list[Server], tmp_path: Path
) -> None:
    tasks, overlap = 150, 3
    seeded = seed(scratch_sqlite, 8, tasks, {"overlap": overlap})
    bases = run_servers(scratch_sqlite, tmp_path, servers, 1)
    tally = asyncio.run(label_everything(bases, seeded))
    assert tally.failures == []
    found = check_tables(scratch_sqlite, seeded.project_id, complete=True)
    assert found["labels"] == tasks * overlap
    assert found["label_ids"] == set(tally.labels)


async def label_until(stop: Callable[[Tally], bool], base: str, seeded: Seeded) -> Tally:
    """Annotators label until ``stop`` says so; the requests then in flight may fail."""
    tally = Tally()

    async def one(i: int, token: str, client: httpx.AsyncClient) -> None:
        auth = {"Authorization": f"Bearer {token}"}
        rng = random.Random(i)
        next_task = f"/api/v1/projects/{seeded.project_id}/next"
        while not stop(tally) and not tally.out_of_time():
            try:
                reply = await client.post(next_task, headers=auth)
                if reply.status_code != 200:
                    return
                path = f"/api/v1/assignments/{reply.json()['assignment_id']}/submit"
                body = {"answers": {"label": rng.choice(["yes", "no"])}}
                reply = await client.post(path, json=body, headers=auth)
            except httpx.TransportError:
                return  # the server is gone; this request may or may not have been kept
            if reply.status_code == 200:
                tally.labels[reply.json()["id"]] = reply.json()["assignment_id"]

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await asyncio.gather(*(one(i, t, client) for i, t in enumerate(seeded.tokens)))
    return tally


@pytest.fixture(params=["sqlite", "postgres"])
def scratch_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"scratch_{request.param}"))


@pytest.mark.slow
def test_a_submission_that_got_a_2xx_survives_kill_9(
    scratch_url: str, servers: list[Server], tmp_path: Path
) -> None:
    seeded = seed(scratch_url, 4, 200, {"overlap": 2})
    (base,) = run_servers(scratch_url, tmp_path, servers, 1)
    killed = False

    def kill_after_some(tally: Tally) -> bool:
        nonlocal killed
        if len(tally.labels) >= 40 and not killed:
            servers[0].kill()  # while the other annotators' requests are in flight
            killed = True
        return killed

    tally = asyncio.run(label_until(kill_after_some, base, seeded))
    assert killed and len(tally.labels) >= 40
    restarted = Server(scratch_url, tmp_path / "restarted.log").start()
    servers.append(restarted)
    restarted.wait_until_up()
    owner = {"Authorization": f"Bearer {seeded.owner_token}"}
    kept: set[int] = set()
    cursor: str | None = None
    while True:
        params = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = httpx.get(
            f"{restarted.base}/api/v1/projects/{seeded.project_id}/annotations",
            params=params,
            headers=owner,
        ).json()
        kept |= {item["id"] for item in page["items"]}
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert set(tally.labels) <= kept
    check_tables(scratch_url, seeded.project_id, complete=False)
