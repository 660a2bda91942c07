"""Fixtures for the quality loop: annotators working through the REST API, the loop's sweeps run
by the test itself (deterministically, in the test's transaction), and seeded gold coins."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from tests.conftest import Factory, Person

from quorum.db.engine import Database
from quorum.domain import quality_jobs, users

CHOICE3 = {"questions": [{"name": "label", "kind": "choice", "options": ["a", "b", "c"]}]}


@pytest.fixture(autouse=True)
def quick_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its defaults takes 0.3 s a hash; these tests make people by the dozen."""
    monkeypatch.setattr(
        users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture(autouse=True)
def _coins(seeded_coins: None) -> None:
    """Every quality test draws the hidden-gold coin from a seed (``seeded_coins``)."""


@dataclass
class Desk:
    """An annotator's side of the REST API, and the loop's sweep."""

    client: TestClient
    database: Database
    session: Session

    def next(self, project_id: int, who: Person) -> dict[str, Any] | None:
        reply = self.client.post(f"/api/v1/projects/{project_id}/next", headers=who.headers)
        assert reply.status_code in (200, 204), reply.text
        if reply.status_code == 204:
            assert reply.content == b""
            return None
        found: dict[str, Any] = reply.json()
        return found

    def submit(
        self, lease: dict[str, Any], who: Person, answers: dict[str, Any], duration_ms: int = 5000
    ) -> dict[str, Any]:
        reply = self.client.post(
            f"/api/v1/assignments/{lease['assignment_id']}/submit",
            json={"answers": answers, "duration_ms": duration_ms},
            headers=who.headers,
        )
        assert reply.status_code == 200, reply.text
        found: dict[str, Any] = reply.json()
        return found

    def skip(self, lease: dict[str, Any], who: Person) -> dict[str, Any]:
        reply = self.client.post(
            f"/api/v1/assignments/{lease['assignment_id']}/skip", headers=who.headers
        )
        assert reply.status_code == 200, reply.text
        found: dict[str, Any] = reply.json()
        return found

    def label(
        self,
        project_id: int,
        who: Person,
        answer: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        most: int = 1000,
        duration_ms: int = 5000,
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Take and answer tasks until none is due (at most ``most``): (lease, reply) pairs."""
        done = []
        while len(done) < most and (lease := self.next(project_id, who)) is not None:
            done.append(
                (lease, self.submit(lease, who, answer(lease["task"]["data"]), duration_ms))
            )
        return done

    def sweep(self) -> quality_jobs.Work:
        """One pass of the quality loop, as the server's thread or a worker would run it."""
        work = quality_jobs.sweep(self.database)
        self.session.expire_all()
        return work

    def get(self, path: str, who: Person, status: int = 200) -> Any:
        reply = self.client.get(f"/api/v1{path}", headers=who.headers)
        assert reply.status_code == status, reply.text
        return reply.json()

    def post(self, path: str, who: Person, body: Any = None, status: int = 200) -> Any:
        reply = self.client.post(f"/api/v1{path}", headers=who.headers, json=body)
        assert reply.status_code == status, reply.text
        return reply.json()


@pytest.fixture
def desk(client: TestClient, database: Database, session: Session) -> Desk:
    return Desk(client, database, session)


def team(make: Factory, n: int, *, tier: int = 1, name: str = "ann") -> list[Person]:
    return [make.person(name, tier=tier) for _ in range(n)]


def truth_of(data: dict[str, Any]) -> dict[str, Any]:
    """Tasks carry their true answer in ``data['truth']`` so simulated annotators can use it."""
    return {"label": data["truth"]}
